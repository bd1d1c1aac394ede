package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Fuses the output projection with the loss: {@code cross_entropy(linear(h, W), targets)} becomes
 * {@code linear_cross_entropy(h, W, targets)}, which walks the tokens in chunks and never holds the
 * [B, T, V] logits (for a 32k vocabulary they are most of a step's activation memory). It also
 * computes dh and dW as it goes, so the backward only scales them by the incoming gradient.
 *
 * Changes: replaces the two nodes with one of three outputs (loss, dh, dW) in training programs.
 * Assumes: the logits have no other reader (training programs do not output them); runs before
 * DifferentiateGraph. The unfused pair stays in eval (which outputs logits) and is the reference.
 */
public final class FuseHeadCrossEntropy implements Pass {

    @Override
    public String name() {
        return "FuseHeadCrossEntropy";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return kind.trains();
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        // A training program reports only its loss; the logits are left for eval to output.
        Value loss = g.outputs.get("loss");
        g.outputs.clear();
        g.outputs.put("loss", loss);
        Map<Value, List<Node>> users = g.users();
        for (Node ce : List.copyOf(g.nodes)) {
            if (!ce.op.equals("cross_entropy")) {
                continue;
            }
            Value logits = ce.inputs.get(0);
            Node head = logits.producer();
            if (!head.op.equals("linear") || !Fusions.readOnce(g, users, logits)) {
                continue;
            }
            Fusions.replacePair(g, ce, head, "linear_cross_entropy", List.of(head.inputs.get(0), head.inputs.get(1),
                    ce.inputs.get(1)), ce.attrs);
        }
    }
}
