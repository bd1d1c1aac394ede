package dev.collie.compiler.ir;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/** Text form of the IR, one node a line, as `colliec explain` shows it after each pass. */
public final class GraphPrinter {

    private GraphPrinter() {}

    public static String print(Graph g) {
        StringBuilder out = new StringBuilder();
        for (Node n : g.nodes) {
            out.append("  ").append(node(n)).append('\n');
        }
        if (!g.outputs.isEmpty()) {
            out.append("  outputs ").append(g.outputs.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue())
                    .collect(Collectors.joining(", "))).append('\n');
        }
        return out.toString();
    }

    public static String node(Node n) {
        StringBuilder s = new StringBuilder();
        if (n.outputs.size() == 1) {
            s.append(n.out().ref()).append(':').append(n.out().typeString()).append(" = ");
        } else if (n.outputs.size() > 1) {
            s.append('(').append(n.outputs.stream().map(v -> v.ref() + ":" + v.typeString())
                    .collect(Collectors.joining(", "))).append(") = ");
        }
        s.append(n.op);
        if (!n.inputs.isEmpty()) {
            s.append('(').append(n.inputs.stream().map(Value::ref).collect(Collectors.joining(", "))).append(')');
        }
        for (Map.Entry<String, Object> a : n.attrs.entrySet()) {
            if (n.op.equals("param") && a.getKey().equals("shape") || n.op.equals("input") && !a.getKey().equals("name")) {
                continue;
            }
            s.append(' ').append(a.getKey()).append('=').append(attr(a.getValue()));
        }
        if (n.role != Role.FORWARD) {
            s.append("  [").append(n.role.name().toLowerCase()).append(']');
        }
        if (n.origin != null) {
            s.append("  # ").append(n.origin);
        }
        return s.toString();
    }

    private static String attr(Object v) {
        if (v instanceof String str) {
            return '"' + str + '"';
        }
        if (v instanceof List<?> list) {
            return list.toString().replace(" ", "");
        }
        return String.valueOf(v);
    }
}
