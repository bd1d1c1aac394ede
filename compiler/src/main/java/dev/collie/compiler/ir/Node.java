package dev.collie.compiler.ir;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** One op application: inputs, constant attributes, outputs, and the source position it came from. */
public final class Node {

    public final int id;
    public final String op;
    public final List<Value> inputs;
    public final Map<String, Object> attrs;
    public final List<Value> outputs = new ArrayList<>();
    public Role role;
    /** "llama.collie:40:13" or null for nodes made by passes. */
    public String origin;
    /**
     * The repeated block layer the node computes, "decoder[3]", or null outside blocks: the unit of
     * activation checkpointing (RecomputeActivations).
     */
    public String scope;

    Node(int id, String op, List<Value> inputs, Map<String, Object> attrs, Role role, String origin) {
        this.id = id;
        this.op = op;
        this.inputs = new ArrayList<>(inputs);
        this.attrs = new LinkedHashMap<>(attrs);
        this.role = role;
        this.origin = origin;
    }

    public Value out() {
        return outputs.getFirst();
    }

    public long longAttr(String name) {
        return ((Number) attrs.get(name)).longValue();
    }

    public double doubleAttr(String name) {
        return ((Number) attrs.get(name)).doubleValue();
    }

    public boolean boolAttr(String name) {
        return (Boolean) attrs.get(name);
    }

    public String stringAttr(String name) {
        return (String) attrs.get(name);
    }

    /** Ops that change state instead of (only) producing values; never removed as dead code. */
    public boolean hasSideEffects() {
        return updatesParameter() || op.equals("cached_attention");
    }

    /**
     * Ops that write a parameter in place: the update, and the head, a weight's gradient product and an
     * embedding table's gradient with their updates fused in.
     */
    public boolean updatesParameter() {
        return op.equals("param_update") || op.equals("linear_cross_entropy_update") || op.equals("matmul_tn_update")
                || op.equals("embedding_grad_update");
    }

    /** The parameter an updating op writes (see {@link #updatesParameter()}). */
    public Value updatedParameter() {
        return switch (op) {
            case "param_update" -> inputs.getFirst();
            case "matmul_tn_update", "embedding_grad_update" -> inputs.get(2);
            default -> inputs.get(1);
        };
    }

    @Override
    public String toString() {
        return GraphPrinter.node(this);
    }
}
