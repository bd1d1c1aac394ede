package dev.collie.runtime.exec;

import dev.collie.compiler.analysis.Liveness;
import dev.collie.compiler.ir.Dim;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.MemoryPlanner;
import dev.collie.compiler.plan.MemoryPlanner.MemoryPlan;
import dev.collie.compiler.plan.Plan;
import dev.collie.runtime.optim.Lomo;
import dev.collie.runtime.optim.Optimizer;
import dev.collie.runtime.tensor.Bf16Tensors;
import dev.collie.runtime.tensor.NativeMemory;
import java.lang.foreign.MemorySegment;
import dev.collie.runtime.tensor.Tensor;
import dev.collie.compiler.ir.DType;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Interprets a compiled program node by node. Binds the batch symbols (B, T) from the inputs and
 * places every intermediate value where the {@link MemoryPlanner} put it in one arena, allocated
 * once and reused by every run (grown when a larger batch needs more), so memory follows the
 * compiled schedule: with in-place updates a parameter's gradient's slot is reused right after its
 * update. Program outputs are new tensors the caller owns.
 */
public final class Executor implements AutoCloseable {

    private final Plan plan;
    private final ParameterStore params;
    private final Backend backend;
    private final Map<ProgramKind, Liveness> liveness = new HashMap<>();
    private final Map<ProgramKind, Map<Map<String, Long>, MemoryPlan>> memoryPlans = new HashMap<>();
    /** The arena every run's intermediate values live in; null until the first run. */
    private MemorySegment arena;
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
        Map<String, Long> bindings = bind(g, inputs);
        MemoryPlan memory = memoryPlan(kind, bindings);
        if (arena == null || arena.byteSize() < memory.arenaBytes()) {
            if (arena != null) {
                NativeMemory.free(arena);
                arena = null;
            }
            arena = NativeMemory.allocate(memory.arenaBytes());
        }
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
                            if (in[k].dtype == DType.BF16
                                    && !(n.updatesParameter() && n.inputs.get(k) == n.updatedParameter())
                                    && !backend.readsBf16(n, k)) {
                                widened = widened == null ? new Tensor[in.length] : widened;
                                widened[k] = Bf16Tensors.widen(in[k]);
                                in[k] = widened[k];
                            }
                        }
                        Tensor[] out = new Tensor[n.outputs.size()];
                        for (int k = 0; k < out.length; k++) {
                            Value v = n.outputs.get(k);
                            long[] shape = v.shape.evaluate(bindings);
                            Long offset = memory.offsets().get(v);
                            out[k] = offset == null ? Tensor.allocate(shape, v.dtype)
                                    : Tensor.view(arena.asSlice(offset, Tensor.numel(shape) * v.dtype.bytes), shape,
                                            v.dtype);
                            values.put(v, out[k]);
                        }
                        Long scratchAt = memory.workspaceOffsets().get(n);
                        MemorySegment workspace = scratchAt == null ? null
                                : arena.asSlice(scratchAt, memory.workspaceBytes().get(n));
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
                        } else if (n.updatesParameter()) {
                            executeUpdating(n, in, out, workspace);
                        } else {
                            backend.execute(n, in, out, workspace);
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
            }
            Map<String, Tensor> result = new LinkedHashMap<>();
            g.outputs.forEach((name, v) -> result.put(name, values.remove(v)));
            return result;
        } finally {
            // Whatever is left is a view (of the arena, a parameter or an input) or, when a kernel
            // failed, an output nobody will receive: free() only releases what is owned.
            for (Map.Entry<Value, Tensor> e : values.entrySet()) {
                if (outputs.contains(e.getKey()) && isProduced(e.getKey())) {
                    e.getValue().free();
                }
            }
        }
    }

    /**
     * Runs an op with a parameter's update fused in (linear_cross_entropy_update, matmul_tn_update,
     * embedding_grad_update; the last input is the learning rate). An elementwise optimizer updates each block of rows as the kernel completes it; any
     * other optimizer, or a gradient listener, needs the whole gradient, which is then gathered first (the
     * compiler does not fuse for such optimizers, so this only happens with a plan compiled for LOMO).
     */
    private void executeUpdating(Node n, Tensor[] in, Tensor[] out, MemorySegment workspace) {
        Value p = n.updatedParameter();
        int index = (int) p.producer().longAttr("index");
        Tensor param = in[n.inputs.indexOf(p)];
        double lr = in[in.length - 1].item();
        if (optimizer.elementwise() && gradientListener == null) {
            backend.executeUpdating(n, in, out, workspace, (row0, rows, col0, cols, grad, offset, ld) ->
                    optimizer.updateBlock(index, param, row0, rows, col0, cols, grad, offset, ld, lr));
            return;
        }
        Tensor whole = Tensor.allocate(param.shape, DType.F32);
        try {
            long width = param.numel() / param.shape[0];
            backend.executeUpdating(n, in, out, workspace, (row0, rows, col0, cols, grad, offset, ld) -> {
                for (int r = 0; r < rows; r++) {
                    MemorySegment.copy(grad, (offset + r * ld) * Float.BYTES, whole.data,
                            ((row0 + r) * width + col0) * Float.BYTES, (long) cols * Float.BYTES);
                }
            });
            if (gradientListener != null) {
                gradientListener.accept(whole, index);
            }
            optimizer.update(index, param, whole, lr, 1.0);
        } finally {
            whole.free();
        }
    }

    private static boolean isProduced(Value v) {
        String op = v.producer().op;
        return !op.equals("param") && !op.equals("input");
    }

    /** Where {@code kind}'s values go for these batch symbols (planned once per shape). */
    public MemoryPlan memoryPlan(ProgramKind kind, Map<String, Long> bindings) {
        Graph g = plan.program(kind);
        Liveness live = liveness.computeIfAbsent(kind, k -> new Liveness(g));
        return memoryPlans.computeIfAbsent(kind, k -> new HashMap<>())
                .computeIfAbsent(Map.copyOf(bindings), b -> MemoryPlanner.plan(g, live, b));
    }

    /** Releases the arena (the parameters belong to their store). */
    @Override
    public void close() {
        if (arena != null) {
            NativeMemory.free(arena);
            arena = null;
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
