package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/** What every Fuse pass does once it has found its pattern: a producer folded into its one reader. */
final class Fusions {

    private Fusions() {}

    /** Whether {@code v} is read by exactly one node and is not a program output, so its producer may go. */
    static boolean readOnce(Graph g, Map<Value, List<Node>> users, Value v) {
        return users.getOrDefault(v, List.of()).size() == 1 && !g.outputs.containsValue(v);
    }

    /**
     * Replaces {@code consumer} and {@code producer} by one new node {@code op(inputs)} at the
     * consumer's place, with the consumer's role, origin and scope; the consumer's first result's
     * readers read the new node's first result.
     */
    static Node replacePair(Graph g, Node consumer, Node producer, String op, List<Value> inputs,
                            Map<String, Object> attrs) {
        return replaceGroup(g, consumer, List.of(producer), op, inputs, attrs);
    }

    /**
     * {@link #replacePair} for a consumer and several producers (a chain or a tree of them, each read
     * only inside the group): all of them go, and the new node takes the consumer's place.
     */
    static Node replaceGroup(Graph g, Node consumer, List<Node> producers, String op, List<Value> inputs,
                             Map<String, Object> attrs) {
        Node fused = g.create(op, inputs, attrs, consumer.role, consumer.origin);
        fused.scope = consumer.scope;
        g.insertAt(g.nodes.indexOf(consumer), fused);
        g.replaceAllUses(consumer.out(), fused.out());
        g.nodes.remove(consumer);
        producers.forEach(g.nodes::remove);
        return fused;
    }

    /**
     * Folds each parameter's gradient into its in-place update: every unclipped {@code param_update(P, dP, lr)}
     * of a parameter P whose gradient dP is read only there and made by a {@code gradientOp} node becomes one
     * {@code fusedOp(gradient's inputs..., P, lr)} node (the gradient's role, origin and scope). It goes right
     * after the later of the gradient and P's last other reader, the earliest point where P may change.
     */
    static void fuseGradientIntoUpdate(Graph g, String gradientOp, String fusedOp) {
        Map<Value, List<Node>> users = g.users();
        for (Node update : List.copyOf(g.nodes)) {
            if (!update.op.equals("param_update") || update.inputs.size() != 3) {
                continue;
            }
            Value param = update.inputs.get(0);
            Value grad = update.inputs.get(1);
            Node gradient = grad.producer();
            if (!gradient.op.equals(gradientOp) || !param.producer().op.equals("param") || !readOnce(g, users, grad)) {
                continue;
            }
            List<Value> inputs = new java.util.ArrayList<>(gradient.inputs);
            inputs.add(param);
            inputs.add(update.inputs.get(2));
            Node fused = g.create(fusedOp, inputs, Map.of(), gradient.role, gradient.origin);
            fused.scope = gradient.scope;
            int at = g.nodes.indexOf(gradient);
            for (int i = 0; i < g.nodes.size(); i++) {
                if (g.nodes.get(i) != update && g.nodes.get(i).inputs.contains(param)) {
                    at = Math.max(at, i);
                }
            }
            g.insertAt(at + 1, fused);
            g.nodes.remove(update);
            g.nodes.remove(gradient);
        }
    }
}
