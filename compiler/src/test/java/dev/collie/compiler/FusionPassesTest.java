package dev.collie.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.GraphVerifier;
import dev.collie.compiler.lower.GraphBuilder;
import dev.collie.compiler.passes.FuseRotaryHeads;
import dev.collie.compiler.passes.FuseSwiGlu;
import dev.collie.compiler.passes.ProgramKind;
import java.util.Map;
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
