package dev.collie.runtime.exec;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.compiler.ir.DType;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.compiler.plan.Plan;
import dev.collie.runtime.checkpoint.CheckpointException;
import dev.collie.runtime.checkpoint.HfCheckpoint;
import dev.collie.runtime.checkpoint.HfCheckpointWriter;
import dev.collie.runtime.checkpoint.SafetensorsWriter;
import dev.collie.runtime.checkpoint.StDType;
import dev.collie.runtime.checkpoint.TensorInfo;
import dev.collie.runtime.tensor.Bf16Tensors;
import dev.collie.runtime.tensor.NativeMemory;
import dev.collie.runtime.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Every parameter of a model in one off-heap arena, carved into tensors (as llm.c does): one
 * allocation, contiguous, and a single place that owns the weights. Filled from a Hugging Face
 * checkpoint through the plan's checkpoint names and layouts, or from the `.collie` initialisers.
 */
public final class ParameterStore implements AutoCloseable {

    /** Default shard size when saving: 5 GB, as Hugging Face's save_pretrained. */
    public static final long SHARD_BYTES = 5L * 1000 * 1000 * 1000;

    private final List<ParamInfo> infos;
    private final DType storage;
    private final MemorySegment arena;
    private final Tensor[] tensors;

    public ParameterStore(List<ParamInfo> infos) {
        this(infos, DType.F32);
    }

    /** @param storage F32, or BF16 to keep the weights in half the memory (compute stays fp32) */
    public ParameterStore(List<ParamInfo> infos, DType storage) {
        if (storage != DType.F32 && storage != DType.BF16) {
            throw new IllegalArgumentException("weights are stored as f32 or bf16, not " + storage);
        }
        this.infos = List.copyOf(infos);
        this.storage = storage;
        long total = 0;
        for (ParamInfo p : infos) {
            total = Math.addExact(total, Math.multiplyExact(p.numel(), (long) storage.bytes));
        }
        this.arena = NativeMemory.allocate(Math.max(total, 4));
        this.tensors = new Tensor[infos.size()];
        long offset = 0;
        for (int i = 0; i < infos.size(); i++) {
            ParamInfo p = infos.get(i);
            long bytes = p.numel() * storage.bytes;
            tensors[i] = Tensor.view(arena.asSlice(offset, bytes), shapeOf(p), storage);
            offset += bytes;
        }
    }

    public DType storage() {
        return storage;
    }

    private static long[] shapeOf(ParamInfo p) {
        return p.shape().dims().stream().mapToLong(d -> d.coeff()).toArray();
    }

    public List<ParamInfo> infos() {
        return infos;
    }

    public Tensor tensor(int index) {
        return tensors[index];
    }

    public long bytes() {
        return arena.byteSize();
    }

    /** Fills every parameter from its initialiser; each tensor's stream depends only on the seed and its name. */
    public void initialize(long seed) {
        for (int i = 0; i < infos.size(); i++) {
            ParamInfo p = infos.get(i);
            SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ p.name().hashCode());
            long n = p.numel();
            List<Double> a = p.init().args();
            // bf16 storage: drawn in float32 a part at a time, each part rounded into the tensor (the same
            // values in the same order as drawing the whole), so no float32 copy of a large table exists.
            Tensor part = storage == DType.F32 ? null : Tensor.allocate(new long[] {Math.min(n, CONVERT_FLOATS)}, DType.F32);
            try {
                for (long k0 = 0; k0 < n; k0 += CONVERT_FLOATS) {
                    long count = Math.min(CONVERT_FLOATS, n - k0);
                    MemorySegment seg = part == null ? tensors[i].data : part.data;
                    long at = part == null ? k0 : 0;
                    for (long k = 0; k < count; k++) {
                        double v = switch (p.init().kind()) {
                            case "normal" -> (a.size() > 1 ? a.get(1) : 0.0) + a.get(0) * rng.nextGaussian();
                            case "uniform" -> a.get(0) + (a.get(1) - a.get(0)) * rng.nextDouble();
                            case "zeros" -> 0.0;
                            case "ones" -> 1.0;
                            case "constant" -> a.get(0);
                            default -> throw new IllegalStateException("unknown initialiser " + p.init().kind());
                        };
                        seg.setAtIndex(Tensor.F32, at + k, (float) v);
                    }
                    if (part != null) {
                        Bf16Tensors.narrowNearest(part.data, tensors[i].data, k0, count);
                    }
                }
            } finally {
                if (part != null) {
                    part.free();
                }
            }
        }
    }

    /** Floats converted at a time when bf16 parameters are initialised or loaded (4 MiB). */
    static final long CONVERT_FLOATS = 1L << 20;

    /**
     * Loads every parameter from a checkpoint. A missing tensor, a wrong shape or a non-float dtype
     * is reported with the file, the tensor and where the `.collie` file declares the parameter.
     */
    public void load(HfCheckpoint ckpt) {
        for (int i = 0; i < infos.size(); i++) {
            ParamInfo p = infos.get(i);
            TensorInfo t = ckpt.info(p.checkpointName());
            if (t == null) {
                throw new CheckpointException(ckpt.dir(), p.checkpointName(), "missing from the checkpoint (the model "
                        + "declares it at " + p.declaredAt() + " as '" + p.name() + "' with shape "
                        + p.storedShape() + ")");
            }
            Path file = ckpt.fileOf(p.checkpointName());
            long[] want = p.storedShape().dims().stream().mapToLong(d -> d.coeff()).toArray();
            if (!Arrays.equals(want, t.shape())) {
                throw new CheckpointException(file, p.checkpointName(), "has shape " + Arrays.toString(t.shape())
                        + ", but the model declares " + Arrays.toString(want) + " at " + p.declaredAt()
                        + (p.storedTransposed() ? " (stored transposed)" : ""));
            }
            if (t.dtype() != StDType.F32 && t.dtype() != StDType.F16 && t.dtype() != StDType.BF16
                    && t.dtype() != StDType.F64) {
                throw new CheckpointException(file, p.checkpointName(), "has dtype " + t.dtype()
                        + "; parameters must be F32, F16, BF16 or F64");
            }
            if (!p.storedTransposed() && storage == DType.F32) {
                ckpt.readAsF32(p.checkpointName(), tensors[i].data);
                continue;
            }
            if (!p.storedTransposed()) {
                // bf16 storage: converted a part at a time, without a float32 copy of the whole tensor
                long n = p.numel();
                Tensor part = Tensor.allocate(new long[] {Math.min(n, CONVERT_FLOATS)}, DType.F32);
                try {
                    for (long k0 = 0; k0 < n; k0 += CONVERT_FLOATS) {
                        long count = Math.min(CONVERT_FLOATS, n - k0);
                        ckpt.readAsF32(p.checkpointName(), k0, count, part.data);
                        Bf16Tensors.narrowNearest(part.data, tensors[i].data, k0, count);
                    }
                } finally {
                    part.free();
                }
                continue;
            }
            Tensor tmp = Tensor.allocate(want, DType.F32);
            Tensor logical = p.storedTransposed() ? Tensor.allocate(tensors[i].shape, DType.F32) : tmp;
            try {
                ckpt.readAsF32(p.checkpointName(), tmp.data);
                if (p.storedTransposed()) {
                    transpose(tmp.data, logical.data, (int) want[0], (int) want[1]);
                }
                if (storage == DType.F32) {
                    MemorySegment.copy(logical.data, 0, tensors[i].data, 0, logical.data.byteSize());
                } else {
                    Bf16Tensors.narrowNearest(logical, tensors[i]);
                }
            } finally {
                tmp.free();
                if (logical != tmp) {
                    logical.free();
                }
            }
        }
    }

    /** dst[c, r] = src[r, c] for src [rows, cols]. */
    static void transpose(MemorySegment src, MemorySegment dst, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                dst.setAtIndex(Tensor.F32, (long) c * rows + r, src.getAtIndex(Tensor.F32, (long) r * cols + c));
            }
        }
    }

    /**
     * Writes a Hugging Face checkpoint (atomically: the previous directory survives any failure).
     * {@code baseConfig} is the config.json the model came from, if any; its mapped keys are set
     * from the plan's hyper-parameters so the result configures the same model.
     */
    public void save(Path dir, Plan plan, ObjectNode baseConfig, List<Path> extraFiles) {
        ObjectNode config = baseConfig != null ? baseConfig.deepCopy() : JsonNodeFactory.instance.objectNode();
        for (Map.Entry<String, String> e : plan.configKeys().entrySet()) {
            Object v = plan.hyper().get(e.getKey());
            switch (v) {
                case Long l -> config.put(e.getValue(), l);
                case Integer n -> config.put(e.getValue(), n);
                case Double d -> config.put(e.getValue(), d);
                case Boolean b -> config.put(e.getValue(), b);
                case null -> { }
                default -> config.put(e.getValue(), v.toString());
            }
        }
        if (!config.has("model_type")) {
            config.put("model_type", plan.model());
        }
        config.put("torch_dtype", storage == DType.BF16 ? "bfloat16" : "float32");
        var entries = new ArrayList<SafetensorsWriter.Entry>();
        var temps = new ArrayList<Tensor>();
        try {
            for (int i = 0; i < infos.size(); i++) {
                ParamInfo p = infos.get(i);
                long[] stored = p.storedShape().dims().stream().mapToLong(d -> d.coeff()).toArray();
                Tensor t = tensors[i];
                if (storage == DType.BF16 && p.storedTransposed()) {
                    t = Bf16Tensors.widen(t);
                    temps.add(t);
                }
                MemorySegment data = t.data;
                if (p.storedTransposed()) {
                    Tensor tr = Tensor.allocate(stored, DType.F32);
                    temps.add(tr);
                    transpose(data, tr.data, (int) stored[1], (int) stored[0]);
                    data = tr.data;
                    if (storage == DType.BF16) {
                        Tensor narrow = Tensor.allocate(stored, DType.BF16);
                        temps.add(narrow);
                        Bf16Tensors.narrowNearest(tr, narrow);
                        data = narrow.data;
                    }
                }
                entries.add(new SafetensorsWriter.Entry(p.checkpointName(),
                        storage == DType.BF16 ? StDType.BF16 : StDType.F32, stored, data));
            }
            HfCheckpointWriter.save(dir, config, entries, SHARD_BYTES, extraFiles == null ? List.of() : extraFiles);
        } finally {
            temps.forEach(Tensor::free);
        }
    }

    /** A copy of one parameter as floats, for tests and reports. */
    public float[] values(int index) {
        if (storage == DType.F32) {
            return tensors[index].data.toArray(ValueLayout.JAVA_FLOAT);
        }
        Tensor wide = Bf16Tensors.widen(tensors[index]);
        try {
            return wide.toFloatArray();
        } finally {
            wide.free();
        }
    }

    public int indexOf(String checkpointName) {
        for (int i = 0; i < infos.size(); i++) {
            if (infos.get(i).checkpointName().equals(checkpointName)) {
                return i;
            }
        }
        return -1;
    }

    private boolean closed;

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            NativeMemory.free(arena);
        }
    }
}
