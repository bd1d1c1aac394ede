package dev.collie.compiler.ir;

import dev.collie.compiler.ops.OpRules;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An SSA dataflow graph whose node list is also the execution order (a schedule). Passes rewrite it
 * in place; {@link GraphVerifier} checks it after each one.
 */
public final class Graph {

    /** Stamped on every node created while it is set (GraphBuilder sets it per block layer). */
    public String scope;

    public final List<Node> nodes = new ArrayList<>();
    public final List<ParamInfo> params = new ArrayList<>();
    /** Named results of the program: "loss", "logits", "grad_norm". */
    public final Map<String, Value> outputs = new LinkedHashMap<>();
    private int nextNode;
    private int nextValue;

    /** Appends a node, inferring its output types from the op table. */
    public Node apply(String op, List<Value> inputs, Map<String, Object> attrs, Role role, String origin) {
        Node n = create(op, inputs, attrs, role, origin);
        nodes.add(n);
        return n;
    }

    public Node apply(String op, List<Value> inputs, Map<String, Object> attrs, Role role) {
        return apply(op, inputs, attrs, role, null);
    }

    /** Builds a node without placing it; use {@link #insertAt}. */
    public Node create(String op, List<Value> inputs, Map<String, Object> attrs, Role role, String origin) {
        List<OpRules.Type> types = OpRules.infer(op, inputs, attrs);
        Node n = new Node(nextNode++, op, inputs, attrs, role, origin);
        n.scope = scope;
        for (OpRules.Type t : types) {
            Value v = new Value(nextValue++, t.shape(), t.dtype());
            v.producer = n;
            v.index = n.outputs.size();
            n.outputs.add(v);
        }
        return n;
    }

    /** A new input placed after the existing inputs (so printed programs read top-down). */
    public Value addInput(String name, Shape shape, DType dtype) {
        Map<String, Object> attrs = new LinkedHashMap<>();
        attrs.put("name", name);
        attrs.put("shape", OpRules.shapeToAttr(shape));
        attrs.put("dtype", dtype.shortName());
        Node n = create("input", List.of(), attrs, Role.FORWARD, null);
        int at = 0;
        while (at < nodes.size() && nodes.get(at).op.equals("input")) {
            at++;
        }
        insertAt(at, n);
        return n.out();
    }

    public void insertAt(int position, Node n) {
        nodes.add(position, n);
    }

    public Value param(int index) {
        for (Node n : nodes) {
            if (n.op.equals("param") && n.longAttr("index") == index) {
                return n.out();
            }
        }
        throw new IllegalArgumentException("no param node " + index);
    }

    public Value input(String name) {
        for (Node n : nodes) {
            if (n.op.equals("input") && n.stringAttr("name").equals(name)) {
                return n.out();
            }
        }
        return null;
    }

    /** Makes every reader of {@code old} (and the program outputs) read {@code replacement} instead. */
    public void replaceAllUses(Value old, Value replacement) {
        for (Node n : nodes) {
            n.inputs.replaceAll(v -> v == old ? replacement : v);
        }
        outputs.replaceAll((k, v) -> v == old ? replacement : v);
    }

    /** Every node that reads each value, in program order. */
    public Map<Value, List<Node>> users() {
        Map<Value, List<Node>> users = new HashMap<>();
        for (Node n : nodes) {
            for (Value v : n.inputs) {
                users.computeIfAbsent(v, k -> new ArrayList<>()).add(n);
            }
        }
        return users;
    }

    /** A deep copy: new nodes and values with the same ids, so printed programs stay comparable. */
    public Graph copy() {
        Graph g = new Graph();
        g.params.addAll(params);
        g.nextNode = nextNode;
        g.nextValue = nextValue;
        Map<Value, Value> map = new HashMap<>();
        for (Node n : nodes) {
            List<Value> ins = n.inputs.stream().map(map::get).toList();
            Node c = new Node(n.id, n.op, ins, n.attrs, n.role, n.origin);
            c.scope = n.scope;
            for (Value v : n.outputs) {
                Value cv = new Value(v.id, v.shape, v.dtype);
                cv.producer = c;
                cv.index = v.index;
                c.outputs.add(cv);
                map.put(v, cv);
            }
            g.nodes.add(c);
        }
        outputs.forEach((k, v) -> g.outputs.put(k, map.get(v)));
        return g;
    }

    /** Rebuilds a graph from serialized parts (the plan reader); ids are kept. */
    public Node restore(int id, String op, List<Value> inputs, Map<String, Object> attrs, Role role, String origin,
                        List<Shape> shapes, List<DType> dtypes, List<Integer> valueIds) {
        Node n = new Node(id, op, inputs, attrs, role, origin);
        for (int i = 0; i < shapes.size(); i++) {
            Value v = new Value(valueIds.get(i), shapes.get(i), dtypes.get(i));
            v.producer = n;
            v.index = i;
            n.outputs.add(v);
            nextValue = Math.max(nextValue, v.id + 1);
        }
        nextNode = Math.max(nextNode, id + 1);
        nodes.add(n);
        return n;
    }
}
