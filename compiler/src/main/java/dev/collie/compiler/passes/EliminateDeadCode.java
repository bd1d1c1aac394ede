package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.HashSet;
import java.util.Set;

/**
 * Removes nodes whose results nobody reads: gradients of inputs that need none (the autodiff rules
 * emit both sides of a product), and forward values a program does not output.
 *
 * Changes: deletes nodes, unused inputs included. Keeps parameters, side effects and program outputs.
 */
public final class EliminateDeadCode implements Pass {

    @Override
    public String name() {
        return "EliminateDeadCode";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return true;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Set<Value> live = new HashSet<>(g.outputs.values());
        for (int i = g.nodes.size() - 1; i >= 0; i--) {
            Node n = g.nodes.get(i);
            // Unused inputs go too: a program's inputs are exactly what its caller must provide.
            boolean keep = n.hasSideEffects() || n.op.equals("param") || n.outputs.stream().anyMatch(live::contains);
            if (keep) {
                live.addAll(n.inputs);
            } else {
                g.nodes.remove(i);
            }
        }
    }
}
