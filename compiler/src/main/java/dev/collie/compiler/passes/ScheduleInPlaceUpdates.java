package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import java.util.List;

/**
 * LOMO scheduling: moves every gradient sink (param_update, matmul_tn_update, embedding_grad_update, sq_norm_acc) to
 * the earliest point where it is legal, so each gradient is consumed, and can be freed, the moment it is complete.
 *
 * An update may run only after all its inputs exist and after the last node that reads the
 * parameter's old value (a backward matmul needs W before W changes). Changes: node order only.
 * Assumes: sinks consume complete gradients (DifferentiateGraph, InsertNormClipping).
 */
public final class ScheduleInPlaceUpdates implements Pass {

    @Override
    public String name() {
        return "ScheduleInPlaceUpdates";
    }

    @Override
    public boolean appliesTo(ProgramKind kind) {
        return kind.trains();
    }

    @Override
    public void run(Graph g, ProgramKind kind) {
        List<Node> sinks = g.nodes.stream().filter(n -> n.op.equals("param_update") || n.op.equals("matmul_tn_update")
                || n.op.equals("embedding_grad_update") || n.op.equals("sq_norm_acc")).toList();
        for (Node sink : sinks) {
            g.nodes.remove(sink);
            int earliest = 0;
            for (int i = 0; i < g.nodes.size(); i++) {
                Node n = g.nodes.get(i);
                boolean produces = n.outputs.stream().anyMatch(sink.inputs::contains);
                boolean readsParam = sink.updatesParameter() && n.inputs.contains(sink.updatedParameter());
                if (produces || readsParam) {
                    earliest = i + 1;
                }
            }
            // Never move a sink above a later sink's reads of it: only sq_norm_acc values are read
            // by others, and those readers come after it, so earliest is always before them.
            g.nodes.add(earliest, sink);
        }
    }

}
