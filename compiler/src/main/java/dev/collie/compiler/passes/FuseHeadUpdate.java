package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Fuses the output projection's in-place update into the head: {@code linear_cross_entropy(h, W, t)}
 * whose dW goes straight to {@code param_update(W, dW, lr)} becomes
 * {@code linear_cross_entropy_update(h, W, t, lr)}, which computes W's gradient a tile of vocabulary
 * rows at a time and hands each tile to the optimizer at once. The [V, C] gradient is the largest
 * single buffer of a LOMO step (262 MB for a 32k vocabulary at C = 2048, beside every kept
 * activation at the peak); without it the peak falls by that much, and the gradient's zero fill and
 * read back are gone too.
 *
 * <p>Why it is sound: nothing but the head reads W (an untied head), the head computes dh from the
 * old W before any tile changes, and an elementwise optimizer updates each element from its own
 * gradient, so updating by tiles equals updating all at once. When all tokens' logits do not fit one
 * chunk, the kernel sums dW over the chunks in its workspace first (OpRules.headUpdatesByTile): the
 * op is always correct, only the memory saving needs the small case.
 *
 * Changes: replaces the head and its update by one node at the head's place, in training programs
 * whose optimizer updates elementwise ({@link CompileOptions#elementwiseUpdates()}).
 * Assumes: runs after DifferentiateGraph and InsertNormClipping (a clipped update, whose dW also
 * feeds the norm, does not match) and before ScheduleInPlaceUpdates.
 */
public final class FuseHeadUpdate extends OptionsPass {

    @Override
    public String name() {
        return "FuseHeadUpdate";
    }

    @Override
    public boolean appliesTo(ProgramKind kind, CompileOptions options) {
        return kind.trains() && options.elementwiseUpdates();
    }

    @Override
    public void run(Graph g, ProgramKind kind, CompileOptions options) {
        Map<Value, List<Node>> users = g.users();
        for (Node head : List.copyOf(g.nodes)) {
            if (!head.op.equals("linear_cross_entropy")) {
                continue;
            }
            Value w = head.inputs.get(1);
            Value dw = head.outputs.get(2);
            List<Node> dwUsers = users.getOrDefault(dw, List.of());
            List<Node> wUsers = users.getOrDefault(w, List.of());
            if (!w.producer().op.equals("param") || dwUsers.size() != 1 || g.outputs.containsValue(dw)) {
                continue;
            }
            Node update = dwUsers.getFirst();
            if (!update.op.equals("param_update") || update.inputs.size() != 3 || update.inputs.get(0) != w
                    || update.inputs.get(1) != dw || wUsers.size() != 2 || !wUsers.contains(head)) {
                continue;
            }
            Node fused = g.create("linear_cross_entropy_update",
                    List.of(head.inputs.get(0), w, head.inputs.get(2), update.inputs.get(2)), head.attrs, head.role,
                    head.origin);
            fused.scope = head.scope;
            g.insertAt(g.nodes.indexOf(head), fused);
            g.replaceAllUses(head.outputs.get(0), fused.outputs.get(0));
            g.replaceAllUses(head.outputs.get(1), fused.outputs.get(1));
            g.nodes.remove(head);
            g.nodes.remove(update);
        }
    }
}
