package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Fuses a residual connection into the dense layer before it: {@code r + linear(x, W)} (either
 * operand order) becomes {@code linear_residual(x, W, r)}, whose kernel starts the product's output
 * from r instead of adding r in a separate pass over [B, T, C]. Its gradient passes dy straight to r.
 *
 * Changes: replaces each such pair in the forward graph by one node. Assumes: runs before
 * DifferentiateGraph; the product has no other reader and r has the product's shape (no broadcasting).
 * Without this pass the pair runs unfused, which is the reference the fused op is tested against.
 */
public final class FuseDenseResidual implements Pass {

    @Override
    public String name() {
        return "FuseDenseResidual";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return true;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Map<Value, List<Node>> users = g.users();
        for (Node add : List.copyOf(g.nodes)) {
            if (!add.op.equals("add") || !add.inputs.get(0).shape.equals(add.inputs.get(1).shape)) {
                continue;
            }
            for (int side = 0; side < 2; side++) {
                Value product = add.inputs.get(side);
                Node dense = product.producer();
                if (!dense.op.equals("linear") || !Fusions.readOnce(g, users, product)) {
                    continue;
                }
                Fusions.replacePair(g, add, dense, "linear_residual", List.of(dense.inputs.get(0), dense.inputs.get(1),
                        add.inputs.get(1 - side)), Map.of());
                break;
            }
        }
    }
}
