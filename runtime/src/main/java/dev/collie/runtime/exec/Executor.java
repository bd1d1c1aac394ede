package dev.collie.runtime.exec;

import dev.collie.compiler.analysis.Liveness;
import dev.collie.compiler.ir.Dim;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.Plan;
import dev.collie.runtime.optim.Lomo;
import dev.collie.runtime.optim.Optimizer;
import dev.collie.runtime.tensor.Bf16Tensors;
import dev.collie.runtime.tensor.Tensor;
import dev.collie.compiler.ir.DType;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Interprets a compiled program node by node. Binds the batch symbols (B, T) from the inputs,
 * allocates each value when it is produced and frees it after its last reader, so memory follows
 * the compiled schedule: with in-place updates a parameter's gradient is gone right after its update.
 */
public final class Executor {

    private final Plan plan;
    private final ParameterStore params;
    private final Backend backend;
    private final Map<ProgramKind, Liveness> liveness = new HashMap<>();
    private java.util.function.ObjIntConsumer<Tensor> gradientListener;
    private Optimizer optimizer = new Lomo(0);
    /** Nanoseconds spent per op, when profiling (collie bench --profile). */
    private Map<String, long[]> profile;

    public Executor(Plan plan, ParameterStore params, Backend backend) {
        this.plan = plan;
        this.params = params;
        this.backend = backend;
    }

    /**
     * Sees each parameter's complete gradient (and the parameter index) just before its in-place
     * update consumes it: for tests against reference gradients and for per-parameter statistics.
     */
    public void setGradientListener(java.util.function.ObjIntConsumer<Tensor> listener) {
        this.gradientListener = listener;
    }

    /** Starts collecting time per op; {@link #profile()} returns op to [nanoseconds, calls]. */
    public void enableProfile() {
        profile = new java.util.TreeMap<>();
    }

    public Map<String, long[]> profile() {
        return profile;
    }

    public void setOptimizer(Optimizer optimizer) {
        this.optimizer = optimizer;
    }

    public Optimizer optimizer() {
        return optimizer;
    }

    public Plan plan() {
        return plan;
    }

    public ParameterStore params() {
        return params;
    }

    /**
     * Runs one program. {@code inputs} holds the tensors named by the program's input nodes (the
     * caller keeps ownership); returns the program outputs as new tensors the caller must free.
     */
    public Map<String, Tensor> run(ProgramKind kind, Map<String, Tensor> inputs) {
        Graph g = plan.program(kind);
        Liveness live = liveness.computeIfAbsent(kind, k -> new Liveness(g));
        Map<String, Long> bindings = bind(g, inputs);
        Map<Value, Tensor> values = new HashMap<>();
        List<Node> nodes = g.nodes;
        java.util.Set<Value> outputs = new java.util.HashSet<>(g.outputs.values());
        try {
            for (int i = 0; i < nodes.size(); i++) {
                Node n = nodes.get(i);
                switch (n.op) {
                    case "param" -> values.put(n.out(), params.tensor((int) n.longAttr("index")));
                    case "input" -> values.put(n.out(), inputs.get(n.stringAttr("name")));
                    default -> {
                        Tensor[] in = new Tensor[n.inputs.size()];
                        Tensor[] widened = null;
                        for (int k = 0; k < in.length; k++) {
                            in[k] = values.get(n.inputs.get(k));
                            // bf16 weights are widened for this op alone (the update gets the storage itself)
                            if (in[k].dtype == DType.BF16 && !(n.op.equals("param_update") && k == 0)) {
                                widened = widened == null ? new Tensor[in.length] : widened;
                                widened[k] = Bf16Tensors.widen(in[k]);
                                in[k] = widened[k];
                            }
                        }
                        Tensor[] out = new Tensor[n.outputs.size()];
                        for (int k = 0; k < out.length; k++) {
                            Value v = n.outputs.get(k);
                            out[k] = Tensor.allocate(v.shape.evaluate(bindings), v.dtype);
                            values.put(v, out[k]);
                        }
                        long began = profile == null ? 0 : System.nanoTime();
                        if (n.op.equals("param_update")) {
                            int index = (int) n.inputs.getFirst().producer().longAttr("index");
                            if (gradientListener != null) {
                                gradientListener.accept(in[1], index);
                            }
                            double clip = in.length > 3 ? in[3].item() : 1.0;
                            if (clip != 0) {
                                optimizer.update(index, in[0], in[1], in[2].item(), clip);
                            }
                        } else {
                            backend.execute(n, in, out);
                        }
                        if (widened != null) {
                            for (Tensor w : widened) {
                                if (w != null) {
                                    w.free();
                                }
                            }
                        }
                        if (profile != null) {
                            long[] p = profile.computeIfAbsent(n.op, k -> new long[2]);
                            p[0] += System.nanoTime() - began;
                            p[1]++;
                        }
                    }
                }
                for (Value v : n.inputs) {
                    freeIfDead(v, i, live, values, outputs);
                }
                for (Value v : n.outputs) {
                    freeIfDead(v, i, live, values, outputs);
                }
            }
            Map<String, Tensor> result = new LinkedHashMap<>();
            g.outputs.forEach((name, v) -> result.put(name, values.remove(v)));
            return result;
        } finally {
            for (Map.Entry<Value, Tensor> e : values.entrySet()) {
                if (isOwned(e.getKey())) {
                    e.getValue().free();
                }
            }
        }
    }

    private static boolean isOwned(Value v) {
        String op = v.producer().op;
        return !op.equals("param") && !op.equals("input");
    }

    private static void freeIfDead(Value v, int at, Liveness live, Map<Value, Tensor> values, java.util.Set<Value> outputs) {
        if (live.lastUse.get(v) == at && !outputs.contains(v) && isOwned(v)) {
            Tensor t = values.remove(v);
            if (t != null) {
                t.free();
            }
        }
    }

    /** Reads B and T off the input tensors' shapes, checking every input against its declared shape. */
    private static Map<String, Long> bind(Graph g, Map<String, Tensor> inputs) {
        Map<String, Long> bindings = new HashMap<>();
        for (Node n : g.nodes) {
            if (!n.op.equals("input")) {
                continue;
            }
            String name = n.stringAttr("name");
            Tensor t = inputs.get(name);
            if (t == null) {
                throw new IllegalArgumentException("program input '" + name + "' was not provided");
            }
            List<Dim> dims = n.out().shape.dims();
            if (dims.size() != t.shape.length || t.dtype != n.out().dtype) {
                throw new IllegalArgumentException("input '" + name + "' must be " + n.out().typeString() + ", got "
                        + Arrays.toString(t.shape) + t.dtype.shortName());
            }
            for (int k = 0; k < dims.size(); k++) {
                Dim d = dims.get(k);
                if (d.isConstant()) {
                    if (d.coeff() != t.shape[k]) {
                        throw new IllegalArgumentException("input '" + name + "' dimension " + k + " must be " + d);
                    }
                } else if (d.symbols().size() == 1 && d.coeff() == 1) {
                    Long before = bindings.putIfAbsent(d.symbols().getFirst(), t.shape[k]);
                    if (before != null && before != t.shape[k]) {
                        throw new IllegalArgumentException("inputs disagree on " + d + ": " + before + " vs " + t.shape[k]);
                    }
                }
            }
        }
        return bindings;
    }
}
