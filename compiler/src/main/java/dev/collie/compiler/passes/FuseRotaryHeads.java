package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fuses the head split into the rotary embedding: {@code rope(split_heads(x), positions)} becomes
 * {@code split_heads_rope(x, positions)}, which reads the projection's [B, T, H*D] output and
 * writes rotated [B, H, T, D] heads in one pass (no unrotated copy of q or k). Its gradient,
 * {@code merge_heads_rope}, likewise rotates back and merges in one pass.
 *
 * Changes: replaces each such pair in the forward graph by one node. Assumes: runs before
 * DifferentiateGraph (the fused op has its own gradient rule); the split heads have no other reader.
 * Without this pass the pair runs unfused, which is the reference the fused kernel is tested against.
 * In training and eval programs FuseRotaryAttention then folds the fused node into attention's
 * prologue; decode programs keep it.
 */
public final class FuseRotaryHeads implements Pass {

    @Override
    public String name() {
        return "FuseRotaryHeads";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return true;
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Map<Value, List<Node>> users = g.users();
        for (Node rope : List.copyOf(g.nodes)) {
            if (!rope.op.equals("rope")) {
                continue;
            }
            Value heads = rope.inputs.get(0);
            Node split = heads.producer();
            if (!split.op.equals("split_heads") || !Fusions.readOnce(g, users, heads)) {
                continue;
            }
            Map<String, Object> attrs = new LinkedHashMap<>(rope.attrs);
            attrs.put("heads", split.attrs.get("heads"));
            List<Value> inputs = rope.inputs.size() > 1 ? List.of(split.inputs.get(0), rope.inputs.get(1))
                    : List.of(split.inputs.get(0));
            Fusions.replacePair(g, rope, split, "split_heads_rope", inputs, attrs);
        }
    }
}
