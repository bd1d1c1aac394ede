package dev.collie.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.GraphVerifier;
import dev.collie.compiler.lower.GraphBuilder;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.passes.CompileOptions;
import dev.collie.compiler.passes.FuseRotaryAttention;
import dev.collie.compiler.passes.FuseRotaryHeads;
import dev.collie.compiler.passes.FuseSwiGlu;
import dev.collie.compiler.passes.ProgramKind;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** Before/after tests of the fusion passes on the forward graph of LLaMA and GPT-2. */
class FusionPassesTest {

    static Map<String, Long> histogram(Graph g) {
        return g.nodes.stream().collect(Collectors.groupingBy(n -> n.op, Collectors.counting()));
    }

    static Graph forward(String file, String preset) {
        return GraphBuilder.build(InPlaceScheduleTest.model(file, preset));
    }

    @Test
    void rotaryHeadsReplaceEachSplitThenRope() {
        Graph g = forward("models/llama.collie", "tiny");
        Map<String, Long> before = histogram(g);
        new FuseRotaryHeads().run(g, ProgramKind.TRAIN);
        GraphVerifier.verify(g, "FuseRotaryHeads");
        Map<String, Long> after = histogram(g);
        long layers = 2;
        assertEquals(2 * layers, before.get("rope"));
        assertEquals(3 * layers, before.get("split_heads"), "q, k and v are split");
        assertEquals(null, after.get("rope"));
        assertEquals(layers, after.get("split_heads"), "v has no rotation and stays a plain split");
        assertEquals(2 * layers, after.get("split_heads_rope"));
        assertEquals(before.values().stream().mapToLong(Long::longValue).sum() - 2 * layers, g.nodes.size(),
                "two nodes become one, per rotation");
    }

    @Test
    void rotaryAttentionTakesTheHeadSplitsRotationsAttentionAndMerge() {
        Graph g = forward("models/llama.collie", "tiny");
        new FuseRotaryHeads().run(g, ProgramKind.TRAIN);
        Map<String, Long> before = histogram(g);
        new FuseRotaryAttention().run(g, ProgramKind.TRAIN);
        GraphVerifier.verify(g, "FuseRotaryAttention");
        Map<String, Long> after = histogram(g);
        long layers = 2;
        assertEquals(2 * layers, before.get("split_heads_rope"));
        assertEquals(layers, before.get("merge_heads"));
        assertEquals(layers, after.get("rotary_attention"));
        for (String gone : List.of("split_heads", "split_heads_rope", "merge_heads", "attention")) {
            assertEquals(null, after.get(gone), gone + " is folded into rotary_attention");
        }
        assertEquals(before.values().stream().mapToLong(Long::longValue).sum() - 4 * layers, g.nodes.size(),
                "five nodes become one, per layer");
        Node fused = g.nodes.stream().filter(n -> n.op.equals("rotary_attention")).findFirst().orElseThrow();
        // It reads the projections token-major, then the positions and segments inputs.
        assertEquals(List.of("linear", "linear", "linear", "input", "input"),
                fused.inputs.stream().map(v -> v.producer().op).toList());
        assertEquals("positions", fused.inputs.get(3).producer().stringAttr("name"));
        assertEquals("segments", fused.inputs.get(4).producer().stringAttr("name"));
        assertEquals(4L, fused.longAttr("heads"));
        assertEquals(2L, fused.longAttr("kv_heads"));
        assertTrue(fused.boolAttr("rotary") && fused.boolAttr("causal"));
        assertEquals(10000.0, fused.doubleAttr("theta"));
        assertEquals("[B, T, 64]f32", fused.out().typeString());
        assertEquals("[B, 4, T]f32", fused.outputs.get(1).typeString());
    }

    /** Compiled whole: no head-major copy of q, k, v, the output or their gradients in any training program. */
    @Test
    void llamaTrainingProgramsHaveNoHeadLayoutChanges() {
        for (CompileOptions.Recompute recompute : CompileOptions.Recompute.values()) {
            var plan = Compiler.compile(InPlaceScheduleTest.model("models/llama.collie", "tiny"), true, null,
                    CompileOptions.DEFAULT.withDisabled(Set.of()).withRecompute(recompute));
            for (ProgramKind kind : List.of(ProgramKind.EVAL, ProgramKind.TRAIN, ProgramKind.TRAIN_CLIPPED)) {
                List<String> ops = plan.program(kind).nodes.stream().map(n -> n.op).toList();
                assertTrue(ops.contains("rotary_attention"), kind + " " + recompute);
                assertEquals(kind.trains(), ops.contains("rotary_attention_grad"), kind + " " + recompute);
                for (String op : ops) {
                    assertFalse(op.startsWith("split_heads") || op.startsWith("merge_heads")
                            || op.equals("attention") || op.equals("attention_grad") || op.equals("rope"),
                            kind + " " + recompute + " still has " + op);
                }
            }
            // Generation keeps head-major attention: InsertKvCache makes it cached_attention.
            List<String> decode = plan.program(ProgramKind.DECODE).nodes.stream().map(n -> n.op).toList();
            assertTrue(decode.contains("cached_attention"), decode.toString());
            assertFalse(decode.contains("rotary_attention"));
        }
    }

    @Test
    void rotaryAttentionTakesGpt2sUnrotatedHeadsAndLeavesUnfusedRotationsAlone() {
        Graph gpt2 = forward("samples/gpt2.collie", "tiny");
        new FuseRotaryAttention().run(gpt2, ProgramKind.TRAIN);
        GraphVerifier.verify(gpt2, "FuseRotaryAttention");
        Map<String, Long> after = histogram(gpt2);
        assertEquals(2L, after.get("rotary_attention"));
        assertEquals(null, after.get("split_heads"));
        assertEquals(null, after.get("merge_heads"));
        Node fused = gpt2.nodes.stream().filter(n -> n.op.equals("rotary_attention")).findFirst().orElseThrow();
        assertFalse(fused.boolAttr("rotary") || fused.boolAttr("positions"));
        assertTrue(fused.boolAttr("segments"));
        assertEquals(4, fused.inputs.size(), "q, k, v and the segments");
        // Without FuseRotaryHeads, LLaMA's rope(split_heads(x)) is not the pattern: nothing changes.
        Graph llama = forward("models/llama.collie", "tiny");
        Map<String, Long> before = histogram(llama);
        new FuseRotaryAttention().run(llama, ProgramKind.TRAIN);
        assertEquals(before, histogram(llama));
        assertFalse(new FuseRotaryAttention().appliesTo(ProgramKind.DECODE));
    }

    @Test
    void swiGluReplacesSiluTimesUp() {
        Graph g = forward("models/llama.collie", "tiny");
        Map<String, Long> before = histogram(g);
        new FuseSwiGlu().run(g, ProgramKind.TRAIN);
        GraphVerifier.verify(g, "FuseSwiGlu");
        Map<String, Long> after = histogram(g);
        assertEquals(2, before.get("silu"));
        assertEquals(null, after.get("silu"));
        assertEquals(2, after.get("swiglu"));
        assertEquals(before.get("mul") - 2, after.getOrDefault("mul", 0L));
    }

    @Test
    void modelsWithoutThePatternsAreUnchanged() {
        Graph g = forward("samples/gpt2.collie", "tiny");
        Map<String, Long> before = histogram(g);
        new FuseSwiGlu().run(g, ProgramKind.TRAIN);
        new FuseRotaryHeads().run(g, ProgramKind.TRAIN);
        assertEquals(before, histogram(g));
        Graph llama = forward("models/llama.collie", "tiny");
        Map<String, Long> llamaBefore = histogram(llama);
        new dev.collie.compiler.passes.FuseDenseBias().run(llama, ProgramKind.TRAIN);
        assertEquals(llamaBefore, histogram(llama), "LLaMA has no biases");
    }

    @Test
    void denseBiasTakesEachBiasedProjectionOfGpt2() {
        Graph g = forward("samples/gpt2.collie", "tiny");
        Map<String, Long> before = histogram(g);
        new dev.collie.compiler.passes.FuseDenseBias().run(g, ProgramKind.TRAIN);
        GraphVerifier.verify(g, "FuseDenseBias");
        Map<String, Long> after = histogram(g);
        long fused = after.getOrDefault("linear_bias", 0L);
        assertEquals(4 * 2L, fused, "four biased projections per layer, two layers");
        assertEquals(before.get("linear") - fused, after.getOrDefault("linear", 0L));
        assertEquals(before.get("add") - fused, after.getOrDefault("add", 0L));
    }

    @Test
    void denseResidualTakesBothResidualAddsOfEachLayer() {
        Graph g = forward("models/llama.collie", "tiny");
        Map<String, Long> before = histogram(g);
        new dev.collie.compiler.passes.FuseDenseResidual().run(g, ProgramKind.TRAIN);
        GraphVerifier.verify(g, "FuseDenseResidual");
        Map<String, Long> after = histogram(g);
        long layers = 2;
        assertEquals(2 * layers, after.get("linear_residual"), "attention output and MLP down projection");
        assertEquals(before.get("linear") - 2 * layers, after.get("linear"));
        assertEquals(before.get("add") - 2 * layers, after.getOrDefault("add", 0L));
    }

    @Test
    void denseActivationTakesGpt2sMlpUpProjection() {
        Graph g = forward("samples/gpt2.collie", "tiny");
        new dev.collie.compiler.passes.FuseDenseBias().run(g, ProgramKind.TRAIN);
        Map<String, Long> before = histogram(g);
        new dev.collie.compiler.passes.FuseDenseActivation().run(g, ProgramKind.TRAIN);
        GraphVerifier.verify(g, "FuseDenseActivation");
        Map<String, Long> after = histogram(g);
        long layers = 2;
        assertEquals(layers, before.get("gelu_tanh"));
        assertEquals(null, after.get("gelu_tanh"));
        assertEquals(layers, after.get("linear_gelu"), "c_fc (with its bias) and GELU, per layer");
        assertEquals(before.get("linear_bias") - layers, after.get("linear_bias"));
        Graph llama = forward("models/llama.collie", "tiny");
        Map<String, Long> llamaBefore = histogram(llama);
        new dev.collie.compiler.passes.FuseDenseActivation().run(llama, ProgramKind.TRAIN);
        assertEquals(llamaBefore, histogram(llama), "LLaMA's activation is SwiGLU, not GELU");
    }
}
