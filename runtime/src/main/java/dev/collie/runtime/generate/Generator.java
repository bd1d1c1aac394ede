package dev.collie.runtime.generate;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.runtime.exec.Executor;
import dev.collie.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.SplittableRandom;
import java.util.function.LongConsumer;

/**
 * Autoregressive generation with a key/value cache: the compiled DECODE program runs once over the
 * prompt (prefill), then once per new token, each time attending over the cached keys and values
 * instead of recomputing the prefix.
 */
public final class Generator implements AutoCloseable {

    private final Executor executor;
    private final int capacity;
    private final Map<String, Tensor> caches = new HashMap<>();

    /** @param capacity the longest prompt plus generated tokens this generator holds */
    public Generator(Executor executor, int capacity) {
        this.executor = executor;
        this.capacity = capacity;
        if (!executor.plan().programs().containsKey(ProgramKind.DECODE)) {
            throw new IllegalStateException("model '" + executor.plan().model() + "' cannot generate with a cache: its "
                    + "forward must take a 'positions' input, output 'logits' and use causal attention");
        }
        Graph g = executor.plan().program(ProgramKind.DECODE);
        for (Node n : g.nodes) {
            if (n.op.equals("input") && n.stringAttr("name").startsWith("kv_cache.")) {
                long[] shape = n.out().shape.evaluate(Map.of("B", 1L, "S", (long) capacity));
                caches.put(n.stringAttr("name"), Tensor.zeros(shape, n.out().dtype));
            }
        }
    }

    /**
     * Generates after {@code prompt}; stops at {@code eos} (if present) or after max_new_tokens,
     * or when the cache is full. Each new id is passed to {@code onToken} as soon as it is chosen.
     *
     * @return the generated ids (without the prompt, with the EOS if one was produced)
     */
    public long[] generate(long[] prompt, Sampling sampling, OptionalLong eos, LongConsumer onToken) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt is empty");
        }
        if (prompt.length >= capacity) {
            throw new IllegalArgumentException("the prompt has " + prompt.length + " tokens; this generator holds "
                    + capacity);
        }
        SplittableRandom rng = new SplittableRandom(sampling.seed());
        List<Long> out = new ArrayList<>();
        float[] logits = step(prompt, 0);
        int position = prompt.length;
        while (out.size() < sampling.maxNewTokens()) {
            long id = sampling.pick(logits, rng);
            out.add(id);
            onToken.accept(id);
            if ((eos.isPresent() && id == eos.getAsLong()) || position >= capacity) {
                break;
            }
            logits = step(new long[] {id}, position);
            position++;
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    /** Runs the decode program on {@code ids} at positions start.., returning the last position's logits. */
    private float[] step(long[] ids, int start) {
        long[] positions = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            positions[i] = start + i;
        }
        Tensor tokens = Tensor.ofLongs(ids, 1, ids.length);
        Tensor pos = Tensor.ofLongs(positions, 1, ids.length);
        try {
            Map<String, Tensor> inputs = new HashMap<>(caches);
            inputs.put("tokens", tokens);
            inputs.put("positions", pos);
            Map<String, Tensor> out = executor.run(ProgramKind.DECODE, inputs);
            Tensor logits = out.get("logits");
            try {
                int vocab = (int) logits.shape[2];
                float[] last = new float[vocab];
                long base = (long) (ids.length - 1) * vocab;
                for (int v = 0; v < vocab; v++) {
                    last[v] = logits.getFloat(base + v);
                }
                return last;
            } finally {
                out.values().forEach(Tensor::free);
            }
        } finally {
            tokens.free();
            pos.free();
        }
    }

    @Override
    public void close() {
        caches.values().forEach(Tensor::free);
        caches.clear();
    }
}
