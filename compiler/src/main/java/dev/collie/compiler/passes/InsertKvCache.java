package dev.collie.compiler.passes;

import dev.collie.compiler.ir.DType;
import dev.collie.compiler.ir.Dim;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Shape;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Turns the forward into a decoding step with a key/value cache: every attention becomes
 * {@code cached_attention}, which writes the new keys and values into two cache inputs
 * ({@code kv_cache.N.k} and {@code .v}, shape [B, KV, S, D] for a cache of S positions) and attends
 * over everything cached so far. Only "logits" stays an output, so the loss and its inputs die.
 *
 * Assumes: a forward graph with a "positions" input and causal attention (Compiler checks both
 * before asking for a DECODE program).
 */
public final class InsertKvCache implements Pass {

    @Override
    public String name() {
        return "InsertKvCache";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return kind == ProgramKind.DECODE;
    }

    /** Whether a forward graph can be compiled for decoding. */
    public static boolean supports(Graph forward) {
        return forward.input("positions") != null && forward.outputs.containsKey("logits")
                && forward.nodes.stream().filter(n -> n.op.equals("attention")).allMatch(n -> n.boolAttr("causal"));
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Value logits = g.outputs.get("logits");
        g.outputs.clear();
        g.outputs.put("logits", logits);
        Value positions = g.input("positions");
        int slot = 0;
        for (Node attention : g.nodes.stream().filter(n -> n.op.equals("attention")).toList()) {
            Value q = attention.inputs.get(0);
            Value k = attention.inputs.get(1);
            Shape cacheShape = Shape.of(q.shape.dim(0), k.shape.dim(1), Dim.symbol("S"), k.shape.last());
            Value kc = g.addInput("kv_cache." + slot + ".k", cacheShape, DType.F32);
            Value vc = g.addInput("kv_cache." + slot + ".v", cacheShape, DType.F32);
            slot++;
            Node cached = g.create("cached_attention", List.of(q, k, attention.inputs.get(2), kc, vc, positions),
                    Map.of("scale", attention.attrs.get("scale")), Role.FORWARD, attention.origin);
            g.insertAt(g.nodes.indexOf(attention), cached);
            g.replaceAllUses(attention.out(), cached.out());
            g.nodes.remove(attention);
        }
    }
}
