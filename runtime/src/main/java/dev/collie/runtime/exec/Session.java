package dev.collie.runtime.exec;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.compiler.Compiler;
import dev.collie.compiler.passes.CompileOptions;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.Plan;
import dev.collie.compiler.plan.PlanJson;
import dev.collie.dsl.CollieException;
import dev.collie.dsl.SourceFile;
import dev.collie.dsl.Span;
import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.sema.ResolvedModel;
import dev.collie.runtime.backend.cpu.CpuBackend;
import dev.collie.runtime.checkpoint.CheckpointException;
import dev.collie.runtime.checkpoint.HfCheckpoint;
import dev.collie.runtime.data.Batch;
import dev.collie.runtime.tensor.Tensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A model ready to run: its plan (compiled here from a `.collie` file, or read from a plan file),
 * its parameters (from a checkpoint or the initialisers) and an executor. This is the code path of
 * `collie run` and `collie eval`, and the one the golden tests drive.
 */
public final class Session implements AutoCloseable {

    private final Plan plan;
    private final ParameterStore params;
    private final Executor executor;
    private final ObjectNode baseConfig;

    private Session(Plan plan, ParameterStore params, ObjectNode baseConfig) {
        this.plan = plan;
        this.params = params;
        this.executor = new Executor(plan, params, new CpuBackend());
        this.baseConfig = baseConfig;
    }

    /** How the model is given: a `.collie` source (file or embedded text) or a compiled plan file. */
    public record ModelSpec(Path path, SourceFile embedded, String preset, Map<String, String> sets) {
        public static ModelSpec of(Path path, String preset, Map<String, String> sets) {
            return new ModelSpec(path, null, preset, sets == null ? Map.of() : sets);
        }

        boolean isPlan() {
            return path != null && path.toString().endsWith(".json");
        }
    }

    public static Session open(ModelSpec spec, Path checkpoint, long seed) {
        return open(spec, checkpoint, seed, dev.collie.compiler.ir.DType.F32);
    }

    /** @param weights F32, or BF16 to store the weights in bf16 (updates use stochastic rounding) */
    public static Session open(ModelSpec spec, Path checkpoint, long seed, dev.collie.compiler.ir.DType weights) {
        return open(spec, checkpoint, seed, weights, CompileOptions.DEFAULT);
    }

    /**
     * @param weights F32, or BF16 to store the weights in bf16 (updates use stochastic rounding)
     * @param options how to compile a `.collie` source (activation checkpointing); a plan file was
     *                compiled already and keeps its own choices
     */
    public static Session open(ModelSpec spec, Path checkpoint, long seed, dev.collie.compiler.ir.DType weights,
                               CompileOptions options) {
        HfCheckpoint ckpt = checkpoint == null ? null : HfCheckpoint.open(checkpoint);
        try {
            Plan plan;
            if (spec.isPlan()) {
                if (spec.preset() != null || !spec.sets().isEmpty()) {
                    throw CollieException.at(new Span(spec.path().toString(), 0, 0, 0), "a plan's hyper-parameters "
                            + "are fixed when it is compiled; pass the .collie file to use --preset or --set");
                }
                plan = PlanJson.read(spec.path());
                if (ckpt != null) {
                    checkConfig(plan, ckpt);
                }
            } else {
                ModelFile model = spec.embedded() != null ? Compiler.load(spec.embedded()) : Compiler.load(spec.path());
                Path config = ckpt == null ? null : ckpt.dir().resolve("config.json");
                ResolvedModel resolved = Compiler.resolve(model, spec.preset(), config, spec.sets());
                plan = Compiler.compile(resolved, false, null, options);
            }
            ParameterStore params = new ParameterStore(plan.params(), weights);
            try {
                if (ckpt != null) {
                    params.load(ckpt);
                } else {
                    params.initialize(seed);
                }
            } catch (RuntimeException e) {
                params.close();
                throw e;
            }
            return new Session(plan, params, ckpt == null ? null : ckpt.config());
        } finally {
            if (ckpt != null) {
                ckpt.close();
            }
        }
    }

    /** A checkpoint must describe the model the plan was compiled for. */
    private static void checkConfig(Plan plan, HfCheckpoint ckpt) {
        for (Map.Entry<String, String> e : plan.configKeys().entrySet()) {
            JsonNode v = ckpt.config().get(e.getValue());
            Object want = plan.hyper().get(e.getKey());
            if (v == null || v.isNull() || want == null) {
                continue;
            }
            boolean same = want instanceof Number n ? v.isNumber() && v.asDouble() == n.doubleValue()
                    : want instanceof Boolean b ? v.isBoolean() && v.asBoolean() == b : v.asText().equals(want.toString());
            if (!same) {
                throw new CheckpointException(ckpt.dir().resolve("config.json"), "\"" + e.getValue() + "\" is " + v
                        + ", but the plan was compiled with " + e.getKey() + " = " + want
                        + "; compile the plan for this checkpoint or pass the .collie file");
            }
        }
    }

    public Executor executor() {
        return executor;
    }

    public Plan plan() {
        return plan;
    }

    public ParameterStore params() {
        return params;
    }

    /** Size of the table that the "tokens" input indexes, for validating data. */
    public long vocabSize() {
        Graph g = plan.program(ProgramKind.EVAL);
        for (Node n : g.nodes) {
            if (n.op.equals("embedding") && n.inputs.get(0).producer().op.equals("input")) {
                return n.inputs.get(1).shape.dim(0).coeff();
            }
        }
        return 0;
    }

    /** Longest sequence the model accepts: bounded by any embedding indexed by positions (0 = unbounded). */
    public long maxSequence() {
        long max = 0;
        for (Node n : plan.program(ProgramKind.EVAL).nodes) {
            if (n.op.equals("embedding") && n.inputs.get(0).producer().op.equals("positions")) {
                long rows = n.inputs.get(1).shape.dim(0).coeff();
                max = max == 0 ? rows : Math.min(max, rows);
            }
        }
        return max;
    }

    public record StepResult(double loss, double gradNorm) {}

    /**
     * One step with updates fused into the backward. {@code clipNorm} null means the one-pass
     * program (no clipping, no guard); a number runs the two-pass program, which knows the global
     * gradient norm before any weight changes (+infinity: only guard against non-finite steps).
     */
    public StepResult trainStep(Batch batch, double lr, Double clipNorm) {
        ProgramKind kind = clipNorm == null ? ProgramKind.TRAIN : ProgramKind.TRAIN_CLIPPED;
        Tensor lrT = Tensor.scalar(lr);
        Tensor maxNorm = Tensor.scalar(clipNorm == null ? 0 : clipNorm);
        try {
            Map<String, Tensor> inputs = new java.util.HashMap<>(batch.inputs());
            inputs.put("lr", lrT);
            inputs.put("max_norm", maxNorm);
            executor.optimizer().beginStep();
            Map<String, Tensor> out = executor.run(kind, inputs);
            try {
                double loss = out.get("loss").item();
                double norm = out.containsKey("grad_norm") ? out.get("grad_norm").item() : Double.NaN;
                return new StepResult(loss, norm);
            } finally {
                out.values().forEach(Tensor::free);
            }
        } finally {
            lrT.free();
            maxNorm.free();
        }
    }

    /** Runs the eval program; the caller frees the returned tensors ("loss", and "logits" if declared). */
    public Map<String, Tensor> evaluate(Batch batch) {
        return executor.run(ProgramKind.EVAL, batch.inputs());
    }

    /** Whether the plan has a decode program (the model takes positions and outputs logits). */
    public boolean canGenerate() {
        return plan.programs().containsKey(ProgramKind.DECODE);
    }

    /** The checkpoint's config.json this session was loaded from, or null. */
    public ObjectNode baseConfig() {
        return baseConfig;
    }

    public void save(Path dir, List<Path> extraFiles) {
        params.save(dir, plan, baseConfig, extraFiles);
    }

    @Override
    public void close() {
        executor.close();
        params.close();
    }
}
