package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Value;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Activation checkpointing per block layer: the forward keeps only what leaves each layer (its
 * output, the next layer's input) and the backward recomputes the rest of the layer's forward just
 * before it needs it. Activation memory falls from every layer's intermediates to one layer's plus
 * a [B, T, C] per layer, for about one more forward pass of compute.
 *
 * Changes: inserts clones of a layer's forward nodes (role FORWARD, same scope) before the first
 * backward node that reads one of the layer's intermediates, and points the backward at the clones;
 * when the backward moves on to another layer and comes back (the second backward of a clipped
 * step), the layer is recomputed again. EliminateDeadCode drops clones nobody reads.
 * Assumes: runs after DifferentiateGraph and InsertNormClipping, before ScheduleInPlaceUpdates (which
 * then keeps every update after the clones that read its parameter); nodes carry the scope GraphBuilder
 * gave them; forward kernels are deterministic, so recomputed values equal the originals bit for bit.
 */
public final class RecomputeActivations extends OptionsPass {

    @Override
    public String name() {
        return "RecomputeActivations";
    }

    @Override
    public boolean appliesTo(ProgramKind kind, CompileOptions options) {
        return kind.trains() && options.recomputeActivations();
    }

    /** Ops that selective checkpointing keeps rather than recomputes: the ones that cost FLOPs. */
    static final Set<String> EXPENSIVE = Set.of("linear", "linear_residual", "linear_bias", "linear_gelu", "matmul", "attention",
            "rotary_attention", "linear_cross_entropy", "linear_cross_entropy_update");

    private boolean selective;

    @Override
    public void run(Graph g, ProgramKind kind, CompileOptions options) {
        selective = options.recompute() == CompileOptions.Recompute.SELECTIVE;
        // Each layer's forward nodes, in order, and the layer of each value they produce.
        Map<String, List<Node>> layers = new HashMap<>();
        Map<Value, String> layerOf = new HashMap<>();
        for (Node n : g.nodes) {
            if (n.role == Role.FORWARD && n.scope != null && !n.op.equals("param") && !n.op.equals("input")) {
                layers.computeIfAbsent(n.scope, k -> new ArrayList<>()).add(n);
                n.outputs.forEach(v -> layerOf.put(v, n.scope));
            }
        }
        // Checkpoints: values a layer hands to forward nodes outside it (or to the program's outputs).
        Set<Value> kept = new HashSet<>(g.outputs.values());
        if (selective) {
            layers.values().forEach(nodes -> nodes.stream().filter(n -> EXPENSIVE.contains(n.op))
                    .forEach(n -> kept.addAll(n.outputs)));
        }
        for (Node n : g.nodes) {
            if (n.role == Role.FORWARD) {
                for (Value v : n.inputs) {
                    String s = layerOf.get(v);
                    if (s != null && !s.equals(n.scope)) {
                        kept.add(v);
                    }
                }
            }
        }

        List<Node> order = new ArrayList<>();
        String active = null;
        Map<Value, Value> clones = Map.of();
        for (Node n : g.nodes) {
            if (n.role == Role.FORWARD) {
                order.add(n);
                continue;
            }
            Set<String> needed = new LinkedHashSet<>();
            for (Value v : n.inputs) {
                if (layerOf.containsKey(v) && !kept.contains(v)) {
                    needed.add(layerOf.get(v));
                }
            }
            for (String layer : needed) {
                if (!layer.equals(active)) {
                    clones = recompute(g, layers.get(layer), order, selective);
                    active = layer;
                }
                for (int k = 0; k < n.inputs.size(); k++) {
                    Value v = n.inputs.get(k);
                    if (layer.equals(layerOf.get(v)) && !kept.contains(v)) {
                        n.inputs.set(k, clones.get(v));
                    }
                }
            }
            order.add(n);
        }
        g.nodes.clear();
        g.nodes.addAll(order);
    }

    /** Appends clones of a layer's forward nodes to {@code order}; returns original value to clone. */
    private static Map<Value, Value> recompute(Graph g, List<Node> layer, List<Node> order, boolean selective) {
        Map<Value, Value> map = new HashMap<>();
        for (Node n : layer) {
            if (selective && EXPENSIVE.contains(n.op)) {
                continue;
            }
            List<Value> inputs = n.inputs.stream().map(v -> map.getOrDefault(v, v)).toList();
            Node c = g.create(n.op, inputs, n.attrs, Role.FORWARD, n.origin);
            c.scope = n.scope;
            for (int i = 0; i < n.outputs.size(); i++) {
                map.put(n.outputs.get(i), c.outputs.get(i));
            }
            order.add(c);
        }
        return map;
    }
}
