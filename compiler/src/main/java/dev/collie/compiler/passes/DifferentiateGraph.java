package dev.collie.compiler.passes;

import dev.collie.compiler.autodiff.GradRules;
import dev.collie.compiler.ir.DType;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Shape;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Value;
import java.util.List;
import java.util.Map;

/**
 * Appends the backward pass (reverse-mode autodiff from the per-op rule table) and one
 * {@code param_update(p, g, lr)} per parameter, all at the end of the program.
 *
 * Changes: adds an "lr" input, BACKWARD nodes and UPDATE nodes (FuseHeadCrossEntropy, before it,
 * has already reduced a training program's outputs to "loss").
 * Assumes: a forward graph whose "loss" output is a scalar. The result is correct but keeps every
 * gradient alive until the end; ScheduleInPlaceUpdates then moves each update to its earliest point.
 */
public final class DifferentiateGraph implements Pass {

    @Override
    public String name() {
        return "DifferentiateGraph";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return kind.trains();
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        Value loss = g.outputs.get("loss");
        Value lr = g.addInput("lr", Shape.SCALAR, DType.F32);
        Map<Value, Value> grads = GradRules.differentiate(g, loss);
        for (Map.Entry<Value, Value> e : grads.entrySet()) {
            g.apply("param_update", List.of(e.getKey(), e.getValue(), lr), Map.of(), Role.UPDATE);
        }
    }
}
