package dev.collie.runtime.exec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.compiler.Compiler;
import dev.collie.compiler.passes.CompileOptions;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.Plan;
import dev.collie.dsl.sema.ResolvedModel;
import dev.collie.runtime.tensor.Tensor;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Passes that change the program, not its results: a training step of the fused program gives the
 * loss, every gradient and the updated weights of the unfused reference program, and one with
 * recomputed activations gives exactly those of the program that keeps them.
 */
class ProgramEquivalenceTest {

    static final Set<String> FUSIONS = Set.of("FuseRotaryHeads", "FuseRotaryAttention", "FuseSwiGlu",
            "FuseDenseResidual", "FuseDenseBias", "FuseDenseActivation");

    record Step(double loss, Map<Integer, float[]> grads, float[][] weights) {}

    static Step step(Plan plan, String program, long b, long t) {
        return step(plan, program, b, t, dev.collie.compiler.ir.DType.F32, 0, true);
    }

    /**
     * One training step from the same initial weights and batch. With {@code listen} every gradient is
     * recorded, which makes fused updates gather whole gradients; without, they update by blocks of rows.
     */
    static Step step(Plan plan, String program, long b, long t, dev.collie.compiler.ir.DType storage,
                     double weightDecay, boolean listen) {
        return step(plan, program, b, t, storage, weightDecay, listen, false);
    }

    /**
     * With {@code packed}, each row holds two examples, as the packer makes them: the positions restart
     * at the second one and its segment id differs (attention stays within each).
     */
    static Step step(Plan plan, String program, long b, long t, dev.collie.compiler.ir.DType storage,
                     double weightDecay, boolean listen, boolean packed) {
        try (ParameterStore params = new ParameterStore(plan.params(), storage);
             Executor ex = new Executor(plan, params, new dev.collie.runtime.backend.cpu.CpuBackend())) {
            params.initialize(7);
            ex.setOptimizer(new dev.collie.runtime.optim.Lomo(weightDecay));
            ex.optimizer().beginStep();
            Map<Integer, float[]> grads = new HashMap<>();
            if (listen) {
                ex.setGradientListener((g, index) -> grads.put(index, g.toFloatArray()));
            }
            Random rnd = new Random(3);
            long[] tokens = new long[(int) (b * t)];
            long[] positions = new long[tokens.length];
            long[] segments = new long[tokens.length];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = rnd.nextInt((int) plan.params().getFirst().shape().dim(0).coeff());
                positions[i] = i % t;
                if (packed && i % t >= t / 3) {
                    positions[i] = i % t - t / 3;
                    segments[i] = 1;
                }
            }
            Map<String, Tensor> in = new HashMap<>();
            in.put("tokens", Tensor.ofLongs(tokens, b, t));
            in.put("labels", Tensor.ofLongs(tokens, b, t));
            in.put("positions", Tensor.ofLongs(positions, b, t));
            in.put("segments", Tensor.ofLongs(segments, b, t));
            in.put("lr", Tensor.scalar(0.01));
            in.put("max_norm", Tensor.scalar(1.0));
            Map<String, Tensor> out = ex.run(ProgramKind.valueOf(program.toUpperCase()), in);
            double loss = out.get("loss").item();
            out.values().forEach(Tensor::free);
            in.values().forEach(Tensor::free);
            float[][] weights = new float[plan.params().size()][];
            for (int i = 0; i < weights.length; i++) {
                weights[i] = params.tensor(i).toFloatArray();
            }
            return new Step(loss, grads, weights);
        }
    }

    static List<String> ops(Plan plan, String program) {
        return plan.program(ProgramKind.valueOf(program.toUpperCase())).nodes.stream().map(n -> n.op).toList();
    }

    @ParameterizedTest
    @ValueSource(strings = {"train", "train_clipped"})
    void fusedAndUnfusedGpt2TrainAlike(String program) {
        ResolvedModel model = Compiler.resolve(Compiler.load(Path.of("..", "samples", "gpt2.collie")), "tiny", null,
                Map.of());
        Plan fused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(Set.of()));
        Plan unfused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(FUSIONS));
        assertTrue(ops(fused, program).containsAll(List.of("linear_bias", "linear_gelu")), ops(fused, program).toString());
        assertFalse(ops(unfused, program).contains("linear_bias") || ops(unfused, program).contains("linear_gelu"));
        Step a = step(fused, program, 2, 9);
        Step r = step(unfused, program, 2, 9);
        assertEquals(r.loss, a.loss, 1e-5 * Math.abs(r.loss), "loss");
        for (int index : r.grads.keySet()) {
            close(r.grads.get(index), a.grads.get(index), "gradient of " + fused.params().get(index).name());
        }
        for (int i = 0; i < r.weights.length; i++) {
            close(r.weights[i], a.weights[i], "updated " + fused.params().get(i).name());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"train", "train_clipped"})
    void fusedAndUnfusedProgramsTrainAlike(String program) {
        ResolvedModel model = Compiler.resolve(Compiler.load(Path.of("..", "models", "llama.collie")), "tiny", null,
                Map.of());
        Plan fused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(Set.of()));
        Plan unfused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(FUSIONS));
        // The passes did fire (or this test would compare a program with itself).
        assertTrue(ops(fused, program).containsAll(List.of("swiglu", "swiglu_grad", "rotary_attention",
                "rotary_attention_grad", "linear_residual")), ops(fused, program).toString());
        assertFalse(ops(fused, program).contains("silu") || ops(fused, program).contains("rope"));
        assertTrue(ops(unfused, program).containsAll(List.of("silu", "silu_grad", "rope", "split_heads")));

        Step a = step(fused, program, 2, 13);
        Step r = step(unfused, program, 2, 13);
        assertEquals(r.loss, a.loss, 1e-5 * Math.abs(r.loss), "loss");
        assertEquals(r.grads.keySet(), a.grads.keySet());
        for (int index : r.grads.keySet()) {
            close(r.grads.get(index), a.grads.get(index), "gradient of " + fused.params().get(index).name());
        }
        for (int i = 0; i < r.weights.length; i++) {
            close(r.weights[i], a.weights[i], "updated " + fused.params().get(i).name());
        }
    }

    /**
     * FuseRotaryAttention alone: attention on the token-major projections, rotating q and k in its
     * prologue, gives the bits of the split-and-rotate, head-major attention and merge it replaces (with
     * FuseRotaryHeads on in both), for LLaMA (rotary, grouped-query heads) and GPT-2 (no rotation), on rows
     * that pack two examples (restarting positions, two segments).
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"models/llama.collie,train,70", "models/llama.collie,train_clipped,70",
            "samples/gpt2.collie,train,30"})
    void rotaryAttentionTrainsBitForBit(String file, String program, long t) {
        ResolvedModel model = Compiler.resolve(Compiler.load(Path.of("..", file)), "tiny", null, Map.of());
        Plan fused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(Set.of()));
        Plan reference = Compiler.compile(model, true, null,
                CompileOptions.DEFAULT.withDisabled(Set.of("FuseRotaryAttention")));
        assertTrue(ops(fused, program).containsAll(List.of("rotary_attention", "rotary_attention_grad")));
        assertFalse(ops(fused, program).stream().anyMatch(op -> op.contains("_heads") || op.startsWith("attention")),
                ops(fused, program).toString());
        assertTrue(ops(reference, program).containsAll(List.of("attention", "attention_grad", "merge_heads")));

        // 70 tokens make two query tiles (and a partial one) for LLaMA; GPT-2's context is 32.
        Step a = step(fused, program, 2, t, dev.collie.compiler.ir.DType.F32, 0, true, true);
        Step r = step(reference, program, 2, t, dev.collie.compiler.ir.DType.F32, 0, true, true);
        assertEquals(r.loss, a.loss, "loss");
        assertEquals(r.grads.keySet(), a.grads.keySet());
        for (int index : r.grads.keySet()) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(r.grads.get(index), a.grads.get(index),
                    "gradient of " + fused.params().get(index).name());
        }
        for (int i = 0; i < r.weights.length; i++) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(r.weights[i], a.weights[i],
                    "updated " + fused.params().get(i).name());
        }
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"train,FULL", "train_clipped,FULL", "train,SELECTIVE",
            "train_clipped,SELECTIVE"})
    void recomputedActivationsTrainBitForBit(String program, CompileOptions.Recompute mode) {
        ResolvedModel model = Compiler.resolve(Compiler.load(Path.of("..", "models", "llama.collie")), "tiny", null,
                Map.of());
        Plan kept = Compiler.compile(model, true, null, CompileOptions.DEFAULT);
        Plan recomputed = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withRecompute(mode));
        String recomputedOp = mode == CompileOptions.Recompute.FULL ? "rotary_attention" : "rms_norm";
        long before = ops(kept, program).stream().filter(op -> op.equals(recomputedOp)).count();
        long after = ops(recomputed, program).stream().filter(op -> op.equals(recomputedOp)).count();
        assertTrue(after > before, "the backward recomputes each layer's " + recomputedOp + ": " + before + " vs " + after);
        if (mode == CompileOptions.Recompute.SELECTIVE) {
            assertEquals(ops(kept, program).stream().filter(op -> op.equals("linear")).count(),
                    ops(recomputed, program).stream().filter(op -> op.equals("linear")).count(),
                    "selective checkpointing recomputes no matrix product");
        }

        Step a = step(recomputed, program, 2, 11);
        Step r = step(kept, program, 2, 11);
        assertEquals(r.loss, a.loss, "loss");
        assertEquals(r.grads.keySet(), a.grads.keySet());
        for (int index : r.grads.keySet()) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(r.grads.get(index), a.grads.get(index),
                    "gradient of " + kept.params().get(index).name());
        }
        for (int i = 0; i < r.weights.length; i++) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(r.weights[i], a.weights[i],
                    "updated " + kept.params().get(i).name());
        }
    }

    /**
     * FuseHeadUpdate: the head that applies its weight's update a tile of vocabulary rows at a time gives
     * the bits of the separate update of the whole gradient, for float and bf16 weights (whose stochastic
     * rounding must draw each element's own random bits) and with weight decay. The vocabulary of 600 makes
     * three tiles of uneven height; 2 x 13 tokens fit one chunk, 2 x 64 x 600 > 8M floats would not.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"F32,0", "F32,0.1", "BF16,0", "BF16,0.1"})
    void fusedHeadUpdateGivesTheSeparateUpdatesWeights(dev.collie.compiler.ir.DType storage, double weightDecay) {
        ResolvedModel model = Compiler.resolve(Compiler.load(Path.of("..", "models", "llama.collie")), "tiny", null,
                Map.of("vocab", "600"));
        Plan fused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(Set.of()));
        Plan separate = Compiler.compile(model, true, null,
                CompileOptions.DEFAULT.withDisabled(Set.of("FuseHeadUpdate")));
        assertTrue(ops(fused, "train").contains("linear_cross_entropy_update"));
        assertFalse(ops(separate, "train").contains("linear_cross_entropy_update"));
        Step a = sameStep(fused, separate, storage, weightDecay);
        int head = paramIndex(fused, "lm_head");
        try (ParameterStore initial = new ParameterStore(fused.params(), storage)) {
            initial.initialize(7);
            assertFalse(java.util.Arrays.equals(initial.tensor(head).toFloatArray(), a.weights[head]),
                    "the head weight moved");
        }
    }

    /**
     * FuseWeightUpdate: weights updated from their gradient products a band of rows at a time get the
     * bits of the separate update of the whole gradient, for float and bf16 weights (stochastic rounding
     * draws each element's own bits) and with weight decay. A hidden size of 16400 makes the MLP's
     * weights (1M floats each) two bands each: the gate and up projections' of 8200 rows, the down
     * projection's of 32.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"F32,0", "F32,0.1", "BF16,0", "BF16,0.1"})
    void fusedWeightUpdatesGiveTheSeparateUpdatesWeights(dev.collie.compiler.ir.DType storage, double weightDecay) {
        ResolvedModel model = Compiler.resolve(Compiler.load(Path.of("..", "models", "llama.collie")), "tiny", null,
                Map.of("hidden", "16400"));
        Plan fused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(Set.of()));
        Plan separate = Compiler.compile(model, true, null,
                CompileOptions.DEFAULT.withDisabled(Set.of("FuseWeightUpdate")));
        assertTrue(ops(fused, "train").contains("matmul_tn_update"));
        assertFalse(ops(fused, "train").contains("matmul_tn"));
        assertFalse(ops(separate, "train").contains("matmul_tn_update"));
        assertEquals(16384, dev.collie.compiler.ops.OpRules.weightUpdateBandRows(16400, 64, 26), "two bands");
        assertEquals(63, dev.collie.compiler.ops.OpRules.weightUpdateBandRows(64, 16400, 26), "two bands");
        Step a = sameStep(fused, separate, storage, weightDecay);
        try (ParameterStore initial = new ParameterStore(fused.params(), storage)) {
            initial.initialize(7);
            int moved = 0;
            for (int i = 0; i < a.weights.length; i++) {
                // the matrices (wq .. w_down) whose updates were fused did move
                String name = fused.params().get(i).name();
                if (name.matches(".*\\.w[a-z_]*")) {
                    moved++;
                    assertFalse(java.util.Arrays.equals(initial.tensor(i).toFloatArray(), a.weights[i]), name + " moved");
                }
            }
            assertEquals(14, moved, "the 7 matrices of each of the 2 layers");
        }
    }

    /**
     * FuseEmbeddingUpdate: the embedding table updated a block of rows at a time from its tokens' gradient
     * rows gets the bits of the separate update of the whole [V, C] gradient, for float and bf16 tables
     * (stochastic rounding draws each element's own bits) and with weight decay (rows no token chose still
     * decay: every row is handed over). The table's chosen rows moved, and with weight decay all of them.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"F32,0", "F32,0.1", "BF16,0", "BF16,0.1"})
    void fusedEmbeddingUpdatesGiveTheSeparateUpdatesTable(dev.collie.compiler.ir.DType storage, double weightDecay) {
        ResolvedModel model = Compiler.resolve(Compiler.load(Path.of("..", "models", "llama.collie")), "tiny", null, Map.of());
        Plan fused = Compiler.compile(model, true, null, CompileOptions.DEFAULT.withDisabled(Set.of()));
        Plan separate = Compiler.compile(model, true, null,
                CompileOptions.DEFAULT.withDisabled(Set.of("FuseEmbeddingUpdate")));
        assertTrue(ops(fused, "train").contains("embedding_grad_update"));
        assertFalse(ops(fused, "train").contains("embedding_grad"));
        assertFalse(ops(separate, "train").contains("embedding_grad_update"));
        Step a = sameStep(fused, separate, storage, weightDecay);
        int table = paramIndex(fused, "embed");
        try (ParameterStore initial = new ParameterStore(fused.params(), storage)) {
            initial.initialize(7);
            float[] before = initial.tensor(table).toFloatArray();
            long width = fused.params().get(table).shape().dim(1).coeff();
            int rowsMoved = 0;
            for (int row = 0; row < before.length / width; row++) {
                int from = (int) (row * width);
                rowsMoved += java.util.Arrays.equals(before, from, (int) (from + width), a.weights[table], from,
                        (int) (from + width)) ? 0 : 1;
            }
            assertTrue(rowsMoved > 0, "the table moved");
            if (weightDecay > 0 && storage == dev.collie.compiler.ir.DType.F32) {
                assertEquals(before.length / width, rowsMoved, "weight decay moves every row");
            }
        }
    }

    /**
     * One training step by a plan with a fusion and by one without it (updating by blocks, not gathering whole
     * gradients): the same loss and the same bits in every weight. Returns the fused plan's step.
     */
    static Step sameStep(Plan fused, Plan separate, dev.collie.compiler.ir.DType storage, double weightDecay) {
        Step a = step(fused, "train", 2, 13, storage, weightDecay, false);
        Step r = step(separate, "train", 2, 13, storage, weightDecay, false);
        assertEquals(r.loss, a.loss, "loss");
        for (int i = 0; i < r.weights.length; i++) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(r.weights[i], a.weights[i],
                    "updated " + fused.params().get(i).name());
        }
        return a;
    }

    /** The index of the first parameter whose name contains {@code part}. */
    static int paramIndex(Plan plan, String part) {
        for (int i = 0; i < plan.params().size(); i++) {
            if (plan.params().get(i).name().contains(part)) {
                return i;
            }
        }
        throw new AssertionError("no parameter named like " + part);
    }

    static void close(float[] want, float[] got, String what) {
        double scale = 0;
        for (float v : want) {
            scale = Math.max(scale, Math.abs(v));
        }
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-4 * scale + 1e-7, what + " at " + i);
        }
    }
}
