package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Value;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Global-norm clipping in LOMO's form. In-place updates cannot wait for the norm of all gradients,
 * so the backward runs twice over the same forward activations: the first copy only accumulates
 * sum(g^2) per parameter (each gradient dies right after), then clip_coef computes
 * min(1, max_norm / (norm + 1e-6)), and the second copy applies p -= lr * coef * g.
 *
 * Changes: the UPDATE nodes of the first backward become NORM nodes (sq_norm_acc chain); adds a
 * "max_norm" input, clip_coef, a second copy of every BACKWARD node, and UPDATE nodes taking coef;
 * adds the output "grad_norm". Assumes: DifferentiateGraph ran (backward then updates at the end).
 */
public final class InsertNormClipping implements Pass {

    @Override
    public String name() {
        return "InsertNormClipping";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return kind == ProgramKind.TRAIN_CLIPPED;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Value maxNorm = g.addInput("max_norm", dev.collie.compiler.ir.Shape.SCALAR, dev.collie.compiler.ir.DType.F32);
        List<Node> backward = g.nodes.stream().filter(n -> n.role == Role.BACKWARD).toList();
        List<Node> updates = new ArrayList<>(g.nodes.stream().filter(n -> n.role == Role.UPDATE).toList());
        g.nodes.removeAll(updates);
        // Accumulate in the order gradients complete, so ScheduleInPlaceUpdates can pull each
        // sq_norm_acc up to its gradient without reordering the chain.
        Map<Node, Integer> position = new HashMap<>();
        for (int i = 0; i < g.nodes.size(); i++) {
            position.put(g.nodes.get(i), i);
        }
        updates.sort(Comparator.comparingInt(u -> position.get(u.inputs.get(1).producer())));
        // The chain starts where the backward starts, so no sq_norm_acc has to wait for the end.
        Node zero = g.create("constant", List.of(), Map.of("value", 0.0), Role.NORM, null);
        g.insertAt(g.nodes.indexOf(backward.getFirst()), zero);
        Value acc = zero.out();
        for (Node u : updates) {
            acc = g.apply("sq_norm_acc", List.of(acc, u.inputs.get(1)), Map.of(), Role.NORM, u.origin).out();
        }
        Node clip = g.apply("clip_coef", List.of(acc, maxNorm), Map.of(), Role.NORM);
        Value coef = clip.outputs.get(0);
        g.outputs.put("grad_norm", clip.outputs.get(1));
        Map<Value, Value> copy = new HashMap<>();
        for (Node n : backward) {
            List<Value> ins = n.inputs.stream().map(v -> copy.getOrDefault(v, v)).toList();
            Node c = g.apply(n.op, ins, n.attrs, Role.BACKWARD, n.origin);
            for (int i = 0; i < n.outputs.size(); i++) {
                copy.put(n.outputs.get(i), c.outputs.get(i));
            }
        }
        for (Node u : updates) {
            Value grad = copy.getOrDefault(u.inputs.get(1), u.inputs.get(1));
            g.apply("param_update", List.of(u.inputs.get(0), grad, u.inputs.get(2), coef), Map.of(), Role.UPDATE,
                    u.origin);
        }
    }
}
