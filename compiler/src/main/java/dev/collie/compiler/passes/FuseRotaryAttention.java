package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fuses the head layout changes and the rotary embedding into attention:
 * {@code merge_heads(attention(split_heads_rope(qp, pos), split_heads_rope(kp, pos), split_heads(vp)[, segments]))}
 * becomes {@code rotary_attention(qp, kp, vp[, pos][, segments])}, whose kernel reads the projections
 * token-major ([B, T, H*D] and [B, T, KV*D]), rotates q and k as it copies them into its tiles, and
 * writes the output token-major for the output projection. Its gradient {@code rotary_attention_grad}
 * likewise writes dq and dk inversely rotated, and dv, token-major. No head-major [B, H, T, D] copy of
 * q, k, v, the output or their gradients is left, where the unfused program writes and reads seven.
 * Plain {@code split_heads} for q and k (no rotation, GPT-2) fuses the same way with attr rotary false.
 *
 * Changes: replaces each such group of five nodes in the forward graph by one. Assumes: runs after
 * FuseRotaryHeads (LLaMA's {@code rope(split_heads(x))} is matched in its fused form only) and before
 * DifferentiateGraph; q and k are rotated with one theta and one positions value (or both not at all);
 * every intermediate has no other reader. Not applied to DECODE programs: InsertKvCache turns head-major
 * {@code attention} into {@code cached_attention} over head-major key/value caches.
 * Without this pass the group runs unfused, which is the reference the fused kernel is tested against.
 */
public final class FuseRotaryAttention implements Pass {

    @Override
    public String name() {
        return "FuseRotaryAttention";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return kind != ProgramKind.DECODE;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Map<Value, List<Node>> users = g.users();
        for (Node merge : List.copyOf(g.nodes)) {
            if (!merge.op.equals("merge_heads")) {
                continue;
            }
            Value heads = merge.inputs.get(0);
            Node attention = heads.producer();
            if (!attention.op.equals("attention") || !Fusions.readOnce(g, users, heads)
                    || !unread(g, users, attention.outputs.get(1))) {
                continue;
            }
            Node q = attention.inputs.get(0).producer();
            Node k = attention.inputs.get(1).producer();
            Node v = attention.inputs.get(2).producer();
            boolean rotary = q.op.equals("split_heads_rope");
            if (!v.op.equals("split_heads") || !k.op.equals(q.op)
                    || !(rotary || q.op.equals("split_heads"))
                    || (rotary && !sameRotation(q, k))
                    || !attention.inputs.subList(0, 3).stream().allMatch(x -> Fusions.readOnce(g, users, x))) {
                continue;
            }
            Map<String, Object> attrs = new LinkedHashMap<>();
            attrs.put("heads", q.attrs.get("heads"));
            attrs.put("kv_heads", k.attrs.get("heads"));
            attrs.put("causal", attention.attrs.get("causal"));
            attrs.put("scale", attention.attrs.get("scale"));
            attrs.put("rotary", rotary);
            if (rotary) {
                attrs.put("theta", q.attrs.get("theta"));
            }
            List<Value> inputs = new ArrayList<>(List.of(q.inputs.get(0), k.inputs.get(0), v.inputs.get(0)));
            boolean positioned = rotary && q.inputs.size() > 1;
            attrs.put("positions", positioned);
            if (positioned) {
                inputs.add(q.inputs.get(1));
            }
            boolean segmented = attention.inputs.size() > 3;
            attrs.put("segments", segmented);
            if (segmented) {
                inputs.add(attention.inputs.get(3));
            }
            Fusions.replaceGroup(g, merge, List.of(attention, q, k, v), "rotary_attention", inputs, attrs);
        }
    }

    /** Whether nothing reads {@code v} (the forward graph has not asked for the log-sum-exp yet). */
    private static boolean unread(Graph g, Map<Value, List<Node>> users, Value v) {
        return users.getOrDefault(v, List.of()).isEmpty() && !g.outputs.containsValue(v);
    }

    /** Whether two split_heads_rope nodes apply one rotation: forward, same theta, same positions (or none). */
    private static boolean sameRotation(Node q, Node k) {
        return !q.boolAttr("inverse") && !k.boolAttr("inverse")
                && q.doubleAttr("theta") == k.doubleAttr("theta")
                && q.inputs.size() == k.inputs.size()
                && (q.inputs.size() == 1 || q.inputs.get(1) == k.inputs.get(1));
    }
}
