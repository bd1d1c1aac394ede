package dev.collie.compiler.analysis;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.compiler.ir.Value;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Liveness of every value in a program's schedule: where it is defined and where it is last read.
 * The runtime frees each buffer after its last use; the memory report and the LOMO test read the
 * peaks from here. Parameters are not counted as values: they live in the parameter arena.
 */
public final class Liveness {

    /** Index of the last node reading each value (its definition index when nobody reads it). */
    public final Map<Value, Integer> lastUse = new HashMap<>();
    /** Values that are (partial sums of) parameter gradients: whatever flows into an update or norm sink. */
    public final Set<Value> parameterGradients = new HashSet<>();
    private final Graph graph;

    public Liveness(Graph graph) {
        this.graph = graph;
        List<Node> nodes = graph.nodes;
        for (int i = 0; i < nodes.size(); i++) {
            Node n = nodes.get(i);
            for (Value v : n.outputs) {
                lastUse.put(v, i);
            }
            for (Value v : n.inputs) {
                lastUse.put(v, i);
            }
        }
        graph.outputs.values().forEach(v -> lastUse.put(v, nodes.size()));
        for (int i = nodes.size() - 1; i >= 0; i--) {
            Node n = nodes.get(i);
            if (n.op.equals("param_update") || n.op.equals("sq_norm_acc")) {
                parameterGradients.add(n.inputs.get(1));
            } else if (n.op.equals("add") && parameterGradients.contains(n.out())) {
                parameterGradients.addAll(n.inputs);
            }
        }
    }

    /** Peak bytes of simultaneously live values, over the whole schedule, for the given B and T. */
    public long peakBytes(Map<String, Long> bindings, Set<Value> only) {
        long live = 0;
        long peak = 0;
        Map<Integer, Long> freeAt = new HashMap<>();
        List<Node> nodes = graph.nodes;
        for (int i = 0; i < nodes.size(); i++) {
            Node n = nodes.get(i);
            if (n.op.equals("param")) {
                continue;
            }
            for (Value v : n.outputs) {
                if (only != null && !only.contains(v)) {
                    continue;
                }
                long bytes = v.shape.numel(bindings) * v.dtype.bytes;
                live += bytes;
                freeAt.merge(lastUse.get(v), bytes, Long::sum);
            }
            peak = Math.max(peak, live);
            live -= freeAt.getOrDefault(i, 0L);
        }
        return peak;
    }

    public long peakActivationBytes(Map<String, Long> bindings) {
        return peakBytes(bindings, null);
    }

    public long peakGradientBytes(Map<String, Long> bindings) {
        return peakBytes(bindings, parameterGradients);
    }

    public static long parameterBytes(List<ParamInfo> params) {
        return params.stream().mapToLong(p -> p.numel() * 4).sum();
    }
}
