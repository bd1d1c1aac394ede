package dev.collie.compiler.ir;

import dev.collie.compiler.ops.OpRules;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Checks the invariants every pass must keep: SSA (each value defined once, before its uses), output
 * types agree with the op table, program outputs are defined, and in-place updates are safe: each
 * parameter is updated at most once and never read after its update.
 */
public final class GraphVerifier {

    private GraphVerifier() {}

    public static void verify(Graph g, String after) {
        Set<Value> defined = new HashSet<>();
        Set<Integer> ids = new HashSet<>();
        Map<Value, Node> updated = new HashMap<>();
        for (Node n : g.nodes) {
            for (Value in : n.inputs) {
                if (!defined.contains(in)) {
                    fail(after, n, "uses " + in.ref() + " before it is defined");
                }
                Node u = updated.get(in);
                if (u != null) {
                    fail(after, n, "reads parameter " + in.ref() + " after its in-place update " + u.id);
                }
            }
            List<OpRules.Type> types;
            try {
                types = OpRules.infer(n.op, n.inputs, n.attrs);
            } catch (ShapeError e) {
                fail(after, n, e.getMessage());
                return;
            }
            if (types.size() != n.outputs.size()) {
                fail(after, n, "has " + n.outputs.size() + " outputs, the op table says " + types.size());
            }
            for (int i = 0; i < types.size(); i++) {
                Value v = n.outputs.get(i);
                if (!types.get(i).shape().equals(v.shape) || types.get(i).dtype() != v.dtype) {
                    fail(after, n, "output " + i + " is " + v.typeString() + ", the op table says "
                            + types.get(i).shape() + types.get(i).dtype().shortName());
                }
                if (v.producer != n || v.index != i || !ids.add(v.id)) {
                    fail(after, n, "output " + v.ref() + " is not a fresh SSA value");
                }
                defined.add(v);
            }
            if (n.updatesParameter()) {
                Value p = n.updatedParameter();
                if (!p.producer().op.equals("param")) {
                    fail(after, n, "updates " + p.ref() + ", which is not a parameter");
                }
                if (updated.put(p, n) != null) {
                    fail(after, n, "updates parameter " + p.ref() + " a second time");
                }
            }
        }
        for (Map.Entry<String, Value> o : g.outputs.entrySet()) {
            if (!defined.contains(o.getValue())) {
                throw new IllegalStateException("after " + after + ": output " + o.getKey() + " is not defined");
            }
        }
    }

    private static void fail(String after, Node n, String what) {
        throw new IllegalStateException("IR verification failed after " + after + ": node " + n.id + " ("
                + GraphPrinter.node(n) + ") " + what);
    }
}
