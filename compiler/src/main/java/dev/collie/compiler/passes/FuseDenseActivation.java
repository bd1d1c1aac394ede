package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Fuses the activation into the dense layer: {@code gelu_tanh(linear(x, W))} and
 * {@code gelu_tanh(linear_bias(x, W, b))} become {@code linear_gelu(x, W[, b])}, whose GEMM applies
 * GELU to each block of its output as the block becomes final, while it is in cache, instead of a
 * separate pass that reads the [B, T, N] product back from memory (GPT-2's MLP). The op also
 * returns the pre-activation, which GELU's gradient needs.
 *
 * Changes: replaces each such pair in the forward graph by one node of two outputs. Assumes: runs
 * after FuseDenseBias (so a biased product is already one node) and before DifferentiateGraph; the
 * product has no other reader. Without this pass the pair runs unfused, the reference.
 */
public final class FuseDenseActivation implements Pass {

    @Override
    public String name() {
        return "FuseDenseActivation";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return true;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Map<Value, List<Node>> users = g.users();
        for (Node act : List.copyOf(g.nodes)) {
            if (!act.op.equals("gelu_tanh")) {
                continue;
            }
            Value product = act.inputs.get(0);
            Node dense = product.producer();
            if (!(dense.op.equals("linear") || dense.op.equals("linear_bias")) || !Fusions.readOnce(g, users, product)) {
                continue;
            }
            Fusions.replacePair(g, act, dense, "linear_gelu", dense.inputs, Map.of());
        }
    }
}
