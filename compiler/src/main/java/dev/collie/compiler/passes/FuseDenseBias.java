package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Fuses a bias into the dense layer: {@code linear(x, W) + b} with b [N] (either operand order)
 * becomes {@code linear_bias(x, W, b)}, whose kernel starts every output row from b instead of
 * adding b in a separate broadcasting pass over [B, T, N] (GPT-2's projections).
 *
 * Changes: replaces each such pair in the forward graph by one node. Assumes: runs before
 * DifferentiateGraph and before FuseDenseResidual; the product has no other reader.
 * Without this pass the pair runs unfused, which is the reference the fused op is tested against.
 */
public final class FuseDenseBias implements Pass {

    @Override
    public String name() {
        return "FuseDenseBias";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return true;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Map<Value, List<Node>> users = g.users();
        for (Node add : List.copyOf(g.nodes)) {
            if (!add.op.equals("add")) {
                continue;
            }
            for (int side = 0; side < 2; side++) {
                Value product = add.inputs.get(side);
                Value bias = add.inputs.get(1 - side);
                Node dense = product.producer();
                if (!dense.op.equals("linear") || !Fusions.readOnce(g, users, product) || bias.shape.rank() != 1
                        || !bias.shape.dim(0).equals(product.shape.last())) {
                    continue;
                }
                Fusions.replacePair(g, add, dense, "linear_bias", List.of(dense.inputs.get(0), dense.inputs.get(1), bias),
                        Map.of());
                break;
            }
        }
    }
}
