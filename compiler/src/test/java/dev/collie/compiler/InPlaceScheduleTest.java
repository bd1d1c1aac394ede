package dev.collie.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.compiler.analysis.Liveness;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.GraphVerifier;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.passes.CompileOptions;
import dev.collie.compiler.lower.GraphBuilder;
import dev.collie.compiler.passes.DifferentiateGraph;
import dev.collie.compiler.passes.EliminateDeadCode;
import dev.collie.compiler.passes.InsertNormClipping;
import dev.collie.compiler.passes.PassPipeline;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.passes.ScheduleInPlaceUpdates;
import dev.collie.compiler.plan.Plan;
import dev.collie.dsl.sema.ResolvedModel;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** LOMO on the compiled plan: updates right after their gradients, never all gradients alive at once. */
class InPlaceScheduleTest {

    static ResolvedModel model(String file, String preset) {
        return Compiler.resolve(Compiler.load(Path.of("..", file)), preset, null, Map.of());
    }

    /** The largest group of parameters one layer holds (or the largest single tensor, e.g. the embedding). */
    static long oneLayerBytes(List<ParamInfo> params) {
        Map<String, Long> perLayer = new HashMap<>();
        long largest = 0;
        for (ParamInfo p : params) {
            String[] parts = p.name().split("\\.");
            String layer = parts.length >= 3 ? parts[0] + "." + parts[1] : p.name();
            perLayer.merge(layer, p.numel() * 4, Long::sum);
            largest = Math.max(largest, p.numel() * 4);
        }
        return Math.max(largest, perLayer.values().stream().mapToLong(Long::longValue).max().orElse(0));
    }

    @ParameterizedTest
    @CsvSource({"models/llama.collie,tiny,train", "models/llama.collie,15m,train",
            "models/llama.collie,tiny,train_clipped", "samples/gpt2.collie,tiny,train"})
    void peakLiveGradientBytesAreAtMostOneLayer(String file, String preset, String program) {
        Plan plan = Compiler.compile(model(file, preset), true, null);
        Graph g = plan.program(ProgramKind.valueOf(program.toUpperCase()));
        Map<String, Long> bt = Map.of("B", 2L, "T", 16L);
        long peak = new Liveness(g).peakGradientBytes(bt);
        long allGrads = Liveness.parameterBytes(plan.params());
        long layer = oneLayerBytes(plan.params());
        assertTrue(peak <= layer, "peak live gradient bytes " + peak + " exceed one layer's " + layer);
        assertTrue(peak < allGrads / 2, "peak " + peak + " is not far below all gradients " + allGrads);
    }

    @Test
    void withoutSchedulingEveryGradientIsAliveAtTheEnd() {
        Graph forward = GraphBuilder.build(model("models/llama.collie", "tiny"));
        Graph g = forward.copy();
        new DifferentiateGraph().run(g, ProgramKind.TRAIN);
        new EliminateDeadCode().run(g, ProgramKind.TRAIN);
        Map<String, Long> bt = Map.of("B", 2L, "T", 16L);
        long before = new Liveness(g).peakGradientBytes(bt);
        assertEquals(Liveness.parameterBytes(g.params), before, "all gradients alive before scheduling");
        new ScheduleInPlaceUpdates().run(g, ProgramKind.TRAIN);
        GraphVerifier.verify(g, "ScheduleInPlaceUpdates");
        long after = new Liveness(g).peakGradientBytes(bt);
        assertTrue(after < before / 4, "scheduling must shrink the gradient peak: " + before + " -> " + after);
    }

    @Test
    void eachUpdateFollowsItsGradientAndTheLastReadOfItsParameter() {
        Graph g = Compiler.compile(model("models/llama.collie", "tiny"), true, null).program(ProgramKind.TRAIN);
        int updates = 0;
        int fusedProducts = 0;
        for (int i = 0; i < g.nodes.size(); i++) {
            Node n = g.nodes.get(i);
            if (!n.op.equals("param_update") && !n.op.equals("matmul_tn_update") && !n.op.equals("embedding_grad_update")) {
                continue;
            }
            updates++;
            fusedProducts += n.op.equals("matmul_tn_update") ? 1 : 0;
            Value param = n.updatedParameter();
            int earliest = 0;
            for (Value in : n.inputs) {
                if (in != param) {
                    earliest = Math.max(earliest, g.nodes.indexOf(in.producer()) + 1);
                }
            }
            for (int k = 0; k < g.nodes.size(); k++) {
                if (k != i && g.nodes.get(k).inputs.contains(param)) {
                    earliest = Math.max(earliest, k + 1);
                }
            }
            assertEquals(earliest, i, n.op + " of " + param + " is not at its earliest point");
        }
        assertEquals(20, updates, "one update per parameter of the tiny LLaMA, but the head's (fused into it)");
        assertEquals(14, fusedProducts, "7 matrices a layer, each updated from its gradient product");
        assertEquals(1, g.nodes.stream().filter(n -> n.op.equals("linear_cross_entropy_update")).count());
        assertEquals(1, g.nodes.stream().filter(n -> n.op.equals("embedding_grad_update")).count(), "the embedding table's");
    }

    @Test
    void weightGradientProductsUpdateTheirWeightOnlyWhenTheOptimizerIsElementwiseAndUnclipped() {
        var m = model("models/llama.collie", "tiny");
        Graph train = Compiler.compile(m, true, null).program(ProgramKind.TRAIN);
        assertTrue(train.nodes.stream().noneMatch(n -> n.op.equals("matmul_tn")), "every weight gradient is fused");
        Graph separate = Compiler.compile(m, true, null, CompileOptions.DEFAULT.withDisabled(Set.of("FuseWeightUpdate")))
                .program(ProgramKind.TRAIN);
        assertEquals(14, separate.nodes.stream().filter(n -> n.op.equals("matmul_tn")).count());
        assertTrue(separate.nodes.stream().noneMatch(n -> n.op.equals("matmul_tn_update")), "--disable-pass FuseWeightUpdate");
        for (Node fused : train.nodes.stream().filter(n -> n.op.equals("matmul_tn_update")).toList()) {
            Value w = fused.updatedParameter();
            assertEquals("param", w.producer().op);
            assertEquals(0, weightSized(train, w), "no [N, K] gradient of " + w + " is computed");
            assertTrue(weightSized(separate, w) > 0);
            assertTrue(train.nodes.stream().noneMatch(n -> n.op.equals("param_update") && n.inputs.getFirst() == w),
                    "a fused weight has no separate update");
        }
        // The planned peak loses the weight gradients (LOMO keeps at most one alive at a time).
        assertTrue(new Liveness(train).peakBytes(Map.of("B", 2L, "T", 16L), new Liveness(train).parameterGradients)
                < new Liveness(separate).peakBytes(Map.of("B", 2L, "T", 16L), new Liveness(separate).parameterGradients),
                "no weight gradient is alive");
        Plan lomo = Compiler.compile(m, true, null);
        assertTrue(lomo.program(ProgramKind.TRAIN_CLIPPED).nodes.stream().noneMatch(n -> n.op.equals("matmul_tn_update")),
                "a clipped update needs the norm first");
        Plan adalomo = Compiler.compile(m, true, null, CompileOptions.DEFAULT.withElementwiseUpdates(false));
        assertTrue(adalomo.program(ProgramKind.TRAIN).nodes.stream().noneMatch(n -> n.op.equals("matmul_tn_update")),
                "AdaLomo needs whole gradients");
    }

    @Test
    void theEmbeddingGradientUpdatesItsTableOnlyWhenTheOptimizerIsElementwiseAndUnclipped() {
        var m = model("models/llama.collie", "tiny");
        Graph train = Compiler.compile(m, true, null).program(ProgramKind.TRAIN);
        assertTrue(train.nodes.stream().noneMatch(n -> n.op.equals("embedding_grad")), "the table's gradient is fused");
        Graph separate = Compiler.compile(m, true, null, CompileOptions.DEFAULT.withDisabled(Set.of("FuseEmbeddingUpdate")))
                .program(ProgramKind.TRAIN);
        assertEquals(1, separate.nodes.stream().filter(n -> n.op.equals("embedding_grad")).count());
        assertTrue(separate.nodes.stream().noneMatch(n -> n.op.equals("embedding_grad_update")),
                "--disable-pass FuseEmbeddingUpdate");
        Node fused = train.nodes.stream().filter(n -> n.op.equals("embedding_grad_update")).findFirst().orElseThrow();
        Value table = fused.updatedParameter();
        assertEquals("param", table.producer().op);
        assertEquals(0, weightSized(train, table), "no [V, C] gradient of the table is computed");
        assertTrue(weightSized(separate, table) > 0);
        assertTrue(train.nodes.stream().noneMatch(n -> n.op.equals("param_update") && n.inputs.getFirst() == table),
                "the table has no separate update");
        // The table's gradient is the largest value of the tiny model's step: the planned peak falls.
        assertTrue(new Liveness(train).peakBytes(Map.of("B", 2L, "T", 16L), new Liveness(train).parameterGradients)
                < new Liveness(separate).peakBytes(Map.of("B", 2L, "T", 16L), new Liveness(separate).parameterGradients),
                "no table gradient is alive");
        Plan lomo = Compiler.compile(m, true, null);
        assertTrue(lomo.program(ProgramKind.TRAIN_CLIPPED).nodes.stream().noneMatch(n -> n.op.equals("embedding_grad_update")),
                "a clipped update needs the norm first");
        Plan adalomo = Compiler.compile(m, true, null, CompileOptions.DEFAULT.withElementwiseUpdates(false));
        assertTrue(adalomo.program(ProgramKind.TRAIN).nodes.stream().noneMatch(n -> n.op.equals("embedding_grad_update")),
                "AdaLomo needs whole gradients");
    }

    @Test
    void verifierRejectsAReadOfAWeightAfterItsFusedGradientUpdate() {
        Graph g = Compiler.compile(model("models/llama.collie", "tiny"), true, null).program(ProgramKind.TRAIN);
        Node fused = g.nodes.stream().filter(n -> n.op.equals("matmul_tn_update")).findFirst().orElseThrow();
        Node reader = g.create("relu", List.of(fused.updatedParameter()), Map.of(), fused.role, null);
        g.insertAt(g.nodes.indexOf(fused) + 1, reader);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> GraphVerifier.verify(g, "a broken pass"));
        assertTrue(e.getMessage().contains("after its in-place update"), e.getMessage());
    }

    @Test
    void theHeadUpdatesItsWeightOnlyWhenTheOptimizerIsElementwiseAndUnclipped() {
        var m = model("models/llama.collie", "tiny");
        Plan lomo = Compiler.compile(m, true, null);
        Graph train = lomo.program(ProgramKind.TRAIN);
        Node head = train.nodes.stream().filter(n -> n.op.equals("linear_cross_entropy_update")).findFirst()
                .orElseThrow();
        Value w = head.inputs.get(1);
        assertTrue(train.nodes.stream().noneMatch(n -> n.op.equals("param_update") && n.inputs.getFirst() == w),
                "the head's weight has no separate update");
        Plan unfusedHead = Compiler.compile(m, true, null, CompileOptions.DEFAULT.withDisabled(Set.of("FuseHeadUpdate")));
        assertEquals(weightSized(unfusedHead.program(ProgramKind.TRAIN), w) - 1, weightSized(train, w),
                "the head's [V, C] gradient is gone (the embedding's, of the same shape, stays)");
        assertTrue(lomo.program(ProgramKind.TRAIN_CLIPPED).nodes.stream()
                .noneMatch(n -> n.op.equals("linear_cross_entropy_update")), "a clipped update needs the norm first");
        Plan adalomo = Compiler.compile(m, true, null, CompileOptions.DEFAULT.withElementwiseUpdates(false));
        assertTrue(adalomo.program(ProgramKind.TRAIN).nodes.stream()
                .anyMatch(n -> n.op.equals("linear_cross_entropy")), "AdaLomo needs whole gradients");
        assertTrue(adalomo.program(ProgramKind.TRAIN).nodes.stream()
                .noneMatch(n -> n.op.equals("linear_cross_entropy_update")));
        Plan unfused = Compiler.compile(m, true, null, CompileOptions.DEFAULT.withDisabled(Set.of("FuseHeadUpdate")));
        assertTrue(unfused.program(ProgramKind.TRAIN).nodes.stream()
                .noneMatch(n -> n.op.equals("linear_cross_entropy_update")), "--disable-pass FuseHeadUpdate");
    }

    /** Values computed (not parameters) with the shape of {@code w}. */
    private static long weightSized(Graph g, Value w) {
        return g.nodes.stream().filter(n -> !n.op.equals("param"))
                .flatMap(n -> n.outputs.stream()).filter(v -> v.shape.equals(w.shape)).count();
    }

    @Test
    void verifierRejectsAReadOfTheHeadWeightAfterTheFusedUpdate() {
        Graph g = Compiler.compile(model("models/llama.collie", "tiny"), true, null).program(ProgramKind.TRAIN);
        Node head = g.nodes.stream().filter(n -> n.op.equals("linear_cross_entropy_update")).findFirst().orElseThrow();
        Value w = head.inputs.get(1);
        Node reader = g.create("relu", List.of(w), Map.of(), head.role, null);
        g.insertAt(g.nodes.indexOf(head) + 1, reader);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> GraphVerifier.verify(g, "a broken pass"));
        assertTrue(e.getMessage().contains("after its in-place update"), e.getMessage());
    }

    @Test
    void clippingRunsTheBackwardTwiceAroundTheNorm() {
        Graph g = Compiler.compile(model("models/llama.collie", "tiny"), true, null).program(ProgramKind.TRAIN_CLIPPED);
        int clipAt = -1;
        for (int i = 0; i < g.nodes.size(); i++) {
            if (g.nodes.get(i).op.equals("clip_coef")) {
                clipAt = i;
            }
        }
        assertTrue(clipAt > 0);
        for (int i = 0; i < g.nodes.size(); i++) {
            Node n = g.nodes.get(i);
            if (n.op.equals("param_update")) {
                assertTrue(i > clipAt, "no parameter may change before the norm is known");
            }
            if (n.op.equals("sq_norm_acc")) {
                assertTrue(i < clipAt);
            }
        }
        assertTrue(g.outputs.containsKey("grad_norm"));
    }

    @Test
    void passesRunInTheOneDeclaredOrder() {
        assertEquals(List.of("FuseHeadCrossEntropy", "FuseRotaryHeads", "FuseRotaryAttention", "FuseSwiGlu", "FuseDenseBias", "FuseDenseActivation", "FuseDenseResidual", "DifferentiateGraph", "InsertNormClipping", "FuseHeadUpdate", "FuseWeightUpdate", "FuseEmbeddingUpdate", "RecomputeActivations", "InsertKvCache", "ScheduleInPlaceUpdates",
                "EliminateDeadCode"),
                PassPipeline.PASSES.stream().map(p -> p.name()).toList());
        assertTrue(new InsertNormClipping().appliesTo(ProgramKind.TRAIN_CLIPPED));
        assertTrue(!new InsertNormClipping().appliesTo(ProgramKind.TRAIN));
    }

    @Test
    void verifierRejectsAReadAfterAnInPlaceUpdate() {
        Graph g = Compiler.compile(model("models/llama.collie", "tiny"), true, null).program(ProgramKind.TRAIN);
        Node update = g.nodes.stream().filter(n -> n.op.equals("param_update")).findFirst().orElseThrow();
        g.nodes.remove(update);
        g.nodes.add(1 + g.nodes.indexOf(update.inputs.get(1).producer()) - 1, update);
        assertThrows(IllegalStateException.class, () -> GraphVerifier.verify(g, "a broken pass"));
    }

    @Test
    void trainingNeverMaterialisesTheLogits() {
        Plan plan = Compiler.compile(model("models/llama.collie", "15m"), true, null);
        for (ProgramKind kind : List.of(ProgramKind.TRAIN, ProgramKind.TRAIN_CLIPPED)) {
            Graph g = plan.program(kind);
            assertTrue(g.nodes.stream().anyMatch(n -> n.op.startsWith("linear_cross_entropy")), kind.key());
            for (Node n : g.nodes) {
                for (var v : n.outputs) {
                    assertTrue(v.shape.rank() == 0 || v.shape.last().coeff() != 32000 || v.shape.rank() == 2,
                            kind.key() + ": " + n + " holds logits");
                }
            }
        }
        // eval keeps the unfused reference path, because it outputs the logits
        assertTrue(plan.program(ProgramKind.EVAL).nodes.stream().anyMatch(n -> n.op.equals("cross_entropy")));
    }

    @Test
    void evalProgramHasNoBackward() {
        Graph g = Compiler.compile(model("models/llama.collie", "tiny"), true, null).program(ProgramKind.EVAL);
        assertTrue(g.nodes.stream().allMatch(n -> n.role == Role.FORWARD));
        assertTrue(g.outputs.containsKey("logits") && g.outputs.containsKey("loss"));
    }
}
