package dev.collie.runtime.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.compiler.cli.CliSupport;
import dev.collie.runtime.data.TokenizedDataset;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.tensor.NativeMemory;
import dev.collie.runtime.tensor.Tensor;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** `collie`: train and evaluate models compiled from `.collie` files. */
@Command(name = "collie", mixinStandardHelpOptions = true, version = "collie 0.1.0",
        description = "Full-parameter fine-tuning with in-place SGD.",
        subcommands = {CollieMain.Run.class, CollieMain.Eval.class})
public final class CollieMain implements Runnable {

    @Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(CliSupport.execute(new CollieMain(), args));
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Options naming the model and where its weights come from. */
    static final class ModelOptions {
        @Option(names = "--checkpoint", paramLabel = "DIR", description = "a Hugging Face checkpoint directory "
                + "(config.json + safetensors); its config.json sets the hyper-parameters")
        Path checkpoint;

        @Option(names = "--preset", description = "a preset of the .collie file (overrides config.json)")
        String preset;

        @Option(names = "--set", paramLabel = "KEY=VALUE", description = "override one hyper-parameter")
        List<String> sets;

        @Option(names = "--seed", defaultValue = "0", description = "seed for initialisation without a checkpoint "
                + "(default ${DEFAULT-VALUE})")
        long seed;

        Session open(Path model) {
            if (checkpoint != null && !Files.isDirectory(checkpoint)) {
                throw new CliSupport.UsageError("--checkpoint " + checkpoint
                        + ": " + (Files.exists(checkpoint) ? "not a directory" : "no such directory"));
            }
            return Session.open(Session.ModelSpec.of(model, preset, CliSupport.sets(sets)), checkpoint, seed);
        }
    }

    static void requireFile(Path p, String option) {
        if (!Files.exists(p)) {
            throw new CliSupport.UsageError(option + " " + p
                    + ": no such file");
        }
    }

    @Command(name = "run", mixinStandardHelpOptions = true,
            description = {"Train every parameter with in-place SGD (LOMO).",
                    "With no arguments: a built-in demo that trains a small LLaMA on synthetic data."})
    static final class Run implements Callable<Integer> {
        @Parameters(index = "0", arity = "0..1", paramLabel = "FILE|PLAN", description = "a .collie file or a plan")
        Path model;

        @CommandLine.Mixin
        ModelOptions modelOptions = new ModelOptions();

        @Option(names = "--data", paramLabel = "FILE.jsonl", description = "pre-tokenized rows {\"input_ids\", \"labels\"}")
        Path data;

        @Option(names = "--steps", defaultValue = "1", description = "training steps (default ${DEFAULT-VALUE})")
        int steps;

        @Option(names = "--lr", defaultValue = "1e-3", description = "learning rate (default ${DEFAULT-VALUE})")
        double lr;

        @Option(names = "--batch-size", defaultValue = "1", description = "rows per step (default ${DEFAULT-VALUE})")
        int batchSize;

        @Option(names = "--clip-norm", description = "clip the global gradient norm (LOMO's two-pass form)")
        Double clipNorm;

        @Option(names = "--save", paramLabel = "DIR", description = "write a Hugging Face checkpoint at the end")
        Path save;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            if (model == null) {
                if (data != null || modelOptions.checkpoint != null) {
                    throw new CliSupport.UsageError("FILE|PLAN is required with --data or "
                            + "--checkpoint");
                }
                return DemoRun.run(out);
            }
            requireFile(model, "model");
            if (data == null) {
                throw new CliSupport.UsageError("--data is required");
            }
            requireFile(data, "--data");
            if (steps < 1 || batchSize < 1 || !(lr > 0) || (clipNorm != null && !(clipNorm > 0))) {
                throw new CliSupport.UsageError("--steps and --batch-size must be at least 1; --lr and --clip-norm must be positive");
            }
            try (Session session = modelOptions.open(model)) {
                TokenizedDataset dataset = TokenizedDataset.read(data, session.vocabSize(), session.maxSequence());
                out.printf("model '%s' (%s): %,d parameters; data %s: %d rows%n", session.plan().model(),
                        session.plan().origin(), session.plan().parameterCount(), data, dataset.size());
                train(session, dataset, steps, batchSize, lr, clipNorm, out);
                if (save != null) {
                    session.save(save, List.of());
                    out.println("saved checkpoint to " + save);
                }
            }
            return 0;
        }
    }

    /** The step loop shared by `collie run` and the demo; prints one line per step. */
    static double train(Session session, TokenizedDataset data, int steps, int batchSize, double lr, Double clipNorm,
                        PrintWriter out) {
        double last = Double.NaN;
        for (int step = 1; step <= steps; step++) {
            long start = System.nanoTime();
            try (TokenizedDataset.Batch batch = data.next(batchSize)) {
                Session.StepResult r = session.trainStep(batch, lr, clipNorm);
                double seconds = (System.nanoTime() - start) / 1e9;
                long tokens = batch.tokens().numel();
                out.printf("step %d/%d  loss %.6f%s  lr %g  %.0f tokens/s  mem %.1f MiB%n", step, steps, r.loss(),
                        Double.isNaN(r.gradNorm()) ? "" : String.format("  grad_norm %.4f", r.gradNorm()), lr,
                        tokens / seconds, NativeMemory.peakBytes() / (1024.0 * 1024.0));
                out.flush();
                last = r.loss();
            }
        }
        return last;
    }

    @Command(name = "eval", mixinStandardHelpOptions = true,
            description = "Print the mean loss over a data file as JSON: {\"loss\": ...}.")
    static final class Eval implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "FILE|PLAN")
        Path model;

        @CommandLine.Mixin
        ModelOptions modelOptions = new ModelOptions();

        @Option(names = "--data", required = true, paramLabel = "FILE.jsonl")
        Path data;

        @Option(names = "--batch-size", defaultValue = "8", description = "rows per forward (default ${DEFAULT-VALUE})")
        int batchSize;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            requireFile(model, "model");
            requireFile(data, "--data");
            try (Session session = modelOptions.open(model)) {
                TokenizedDataset dataset = TokenizedDataset.read(data, session.vocabSize(), session.maxSequence());
                EvalResult r = evaluate(session, dataset, batchSize);
                ObjectNode json = new ObjectMapper().createObjectNode();
                json.put("loss", r.loss);
                json.put("perplexity", Math.exp(r.loss));
                json.put("tokens", r.tokens);
                spec.commandLine().getOut().println(json);
            }
            return 0;
        }
    }

    record EvalResult(double loss, long tokens) {}

    /**
     * Mean loss over every row: each batch's mean weighted by its number of predicted tokens (labels
     * after the first position that are not -100), so the result does not depend on the batch size.
     */
    static EvalResult evaluate(Session session, TokenizedDataset data, int batchSize) {
        double weighted = 0;
        long tokens = 0;
        List<TokenizedDataset.Row> rows = data.rows();
        for (int start = 0; start < rows.size(); start += batchSize) {
            List<TokenizedDataset.Row> part = rows.subList(start, Math.min(rows.size(), start + batchSize));
            long count = part.stream().mapToLong(r -> {
                long c = 0;
                for (int i = 1; i < r.labels().length; i++) {
                    c += r.labels()[i] == TokenizedDataset.IGNORE ? 0 : 1;
                }
                return c;
            }).sum();
            try (TokenizedDataset.Batch batch = TokenizedDataset.batchOf(part)) {
                Map<String, Tensor> out = session.evaluate(batch);
                try {
                    weighted += out.get("loss").item() * count;
                    tokens += count;
                } finally {
                    out.values().forEach(Tensor::free);
                }
            }
        }
        return new EvalResult(tokens == 0 ? 0 : weighted / tokens, tokens);
    }
}
