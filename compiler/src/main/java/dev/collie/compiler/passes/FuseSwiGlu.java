package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Fuses the gated MLP's activation: {@code silu(a) * b} (either operand order) becomes
 * {@code swiglu(a, b)}, one pass that never stores silu(a); its gradient {@code swiglu_grad} gives
 * da and db in one pass too, where the unfused backward takes two products and a silu_grad.
 *
 * Changes: replaces each such pair in the forward graph by one node. Assumes: runs before
 * DifferentiateGraph; silu(a) has no other reader and a and b have one shape (no broadcasting).
 * Without this pass the pair runs unfused, which is the reference the fused kernel is tested against.
 */
public final class FuseSwiGlu implements Pass {

    @Override
    public String name() {
        return "FuseSwiGlu";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return true;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Map<Value, List<Node>> users = g.users();
        for (Node mul : List.copyOf(g.nodes)) {
            if (!mul.op.equals("mul") || !mul.inputs.get(0).shape.equals(mul.inputs.get(1).shape)) {
                continue;
            }
            for (int side = 0; side < 2; side++) {
                Value gate = mul.inputs.get(side);
                Node silu = gate.producer();
                if (!silu.op.equals("silu") || !Fusions.readOnce(g, users, gate)) {
                    continue;
                }
                Fusions.replacePair(g, mul, silu, "swiglu", List.of(silu.inputs.get(0), mul.inputs.get(1 - side)),
                        Map.of());
                break;
            }
        }
    }
}
