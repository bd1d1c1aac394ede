package dev.collie.runtime.train;

import dev.collie.runtime.data.Batch;
import dev.collie.runtime.data.Example;
import dev.collie.runtime.data.Packer;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.generate.Generator;
import dev.collie.runtime.generate.Sampling;
import dev.collie.runtime.tensor.Tensor;
import dev.collie.runtime.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Evaluation on held-out examples: mean loss and perplexity over every predicted token, and for
 * examples with a prompt (a masked prefix followed by the learned answer) a generated answer,
 * compared with the reference for exact-match accuracy.
 */
public final class Evaluator {

    public record Sample(String prompt, String expected, String generated, boolean match) {}

    public record Result(double loss, double perplexity, long tokens, double exactMatch, int scored,
                         List<Sample> samples) {}

    private final Session session;
    private final Tokenizer tokenizer;
    private final int batchSize;

    public Evaluator(Session session, Tokenizer tokenizer, int batchSize) {
        this.session = session;
        this.tokenizer = tokenizer;
        this.batchSize = batchSize;
    }

    /** Loss over all of {@code examples}; exact match over the first {@code prompts} that have a prompt. */
    public Result evaluate(List<Example> examples, int prompts, Sampling sampling, Generator generator) {
        double weighted = 0;
        long tokens = 0;
        long pad = tokenizer.padId().orElse(0);
        for (int start = 0; start < examples.size(); start += batchSize) {
            List<Example> part = examples.subList(start, Math.min(examples.size(), start + batchSize));
            long count = part.stream().mapToLong(Evaluator::predicted).sum();
            if (count == 0) {
                continue;
            }
            try (Batch batch = Batch.of(Packer.unpacked(part), pad)) {
                Map<String, Tensor> out = session.evaluate(batch);
                try {
                    weighted += out.get("loss").item() * count;
                    tokens += count;
                } finally {
                    out.values().forEach(Tensor::free);
                }
            }
        }
        double loss = tokens == 0 ? Double.NaN : weighted / tokens;
        List<Sample> samples = new ArrayList<>();
        int matches = 0;
        if (generator != null) {
            for (Example e : examples) {
                if (samples.size() >= prompts) {
                    break;
                }
                int first = firstLearned(e);
                if (first <= 0) {
                    continue;
                }
                long[] prompt = Arrays.copyOfRange(e.ids(), 0, first);
                long[] answer = learnedRun(e, first);
                String expected = tokenizer.decode(answer, true).strip();
                long[] generated = generator.generate(prompt, sampling, tokenizer.eosId(), id -> { });
                String text = tokenizer.decode(generated, true).strip();
                boolean match = text.equals(expected);
                matches += match ? 1 : 0;
                samples.add(new Sample(tokenizer.decode(prompt, true), expected, text, match));
            }
        }
        double exact = samples.isEmpty() ? Double.NaN : 100.0 * matches / samples.size();
        return new Result(loss, Math.exp(loss), tokens, exact, samples.size(), samples);
    }

    /** Tokens the loss counts: labels after the first position that are not ignored (position t predicts t+1). */
    static long predicted(Example e) {
        long n = 0;
        for (int i = 1; i < e.labels().length; i++) {
            n += e.labels()[i] == Example.IGNORE ? 0 : 1;
        }
        return n;
    }

    private static int firstLearned(Example e) {
        for (int i = 0; i < e.labels().length; i++) {
            if (e.labels()[i] != Example.IGNORE) {
                return i;
            }
        }
        return -1;
    }

    /** The first contiguous run of learned tokens from {@code first}, without a trailing EOS. */
    private long[] learnedRun(Example e, int first) {
        int end = first;
        while (end < e.labels().length && e.labels()[end] != Example.IGNORE) {
            end++;
        }
        long[] run = Arrays.copyOfRange(e.ids(), first, end);
        if (run.length > 0 && tokenizer.eosId().isPresent() && run[run.length - 1] == tokenizer.eosId().getAsLong()) {
            run = Arrays.copyOf(run, run.length - 1);
        }
        return run;
    }
}
