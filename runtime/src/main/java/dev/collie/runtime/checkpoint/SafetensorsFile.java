package dev.collie.runtime.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A read-only, memory-mapped safetensors file.
 *
 * <p>Layout: u64 little-endian header length N, N bytes of UTF-8 JSON header, then the data
 * section. The header is validated completely before anything is mapped, so a corrupt or hostile
 * file fails with a {@link CheckpointException} instead of an out-of-bounds access or a huge
 * allocation later.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** Same cap as the reference implementation; bounds the heap buffer a forged length can request. */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    static final String METADATA_KEY = "__metadata__";

    // Source bytes sit at arbitrary offsets of the mapping and callers' buffers need not be
    // aligned either, hence unaligned layouts; the format is little-endian on every platform.
    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data,
                            Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Opens, validates and maps {@code file}. */
    public static SafetensorsFile open(Path file) {
        if (Files.isDirectory(file)) {
            throw new CheckpointException(file, "is a directory, expected a .safetensors file");
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new CheckpointException(file, "file is too short to be safetensors (" + size + " bytes)");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0);
            long headerLen = lenBuf.getLong(0);
            // The length is an unsigned u64: a negative long is a value above 2^63.
            if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
                throw new CheckpointException(file, "header length " + Long.toUnsignedString(headerLen)
                        + " exceeds the limit of " + MAX_HEADER_BYTES + " bytes");
            }
            if (headerLen > size - 8) {
                throw new CheckpointException(file, "header length " + headerLen
                        + " exceeds the file size (" + size + " bytes)");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLen);
            readFully(ch, header, 8);
            long dataStart = 8 + headerLen;
            ObjectNode json = parseHeaderJson(file, header.flip());
            Map<String, String> metadata = parseMetadata(file, json.get(METADATA_KEY));
            Map<String, TensorInfo> tensors = parseTensors(file, json, size - dataStart);

            Arena arena = Arena.ofShared();
            try {
                MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
                return new SafetensorsFile(file, arena, mapped.asSlice(dataStart),
                        Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        } catch (IOException e) {
            throw new CheckpointException(file, null, "cannot read: " + CheckpointException.describe(e), e);
        }
    }

    public Path path() {
        return path;
    }

    /** All tensors, in header order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** The header's {@code __metadata__} map; empty when absent. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** The tensor's bytes as stored, a read-only view of the mapping valid until {@link #close()}. */
    public MemorySegment raw(String name) {
        TensorInfo t = info(name);
        return data.asSlice(t.begin(), t.byteSize());
    }

    /**
     * Converts a floating-point tensor to little-endian float32 into {@code dst}. F16 and BF16
     * widen exactly; F64 rounds to nearest.
     *
     * @throws IllegalArgumentException if {@code dst} is not exactly numel * 4 bytes (a caller bug)
     * @throws CheckpointException if the tensor is missing or not a floating-point dtype
     */
    public void readAsF32(String name, MemorySegment dst) {
        TensorInfo t = info(name);
        long n = t.numel();
        if (dst.byteSize() != n * 4) {
            throw new IllegalArgumentException("destination for '" + name + "' has " + dst.byteSize()
                    + " bytes, expected " + n * 4);
        }
        readAsF32(name, 0, n, dst);
    }

    /**
     * Elements {@code [first, first + n)} of a tensor (in stored order) as float32 into the first {@code n}
     * floats of {@code dst}: a large tensor can be converted a part at a time, without a float32 copy of
     * the whole.
     */
    public void readAsF32(String name, long first, long n, MemorySegment dst) {
        TensorInfo t = info(name);
        if (first < 0 || n < 0 || first + n > t.numel() || dst.byteSize() < n * 4) {
            throw new IllegalArgumentException("elements [" + first + ", " + (first + n) + ") of '" + name + "' ("
                    + t.numel() + " elements) into " + dst.byteSize() + " bytes");
        }
        long bytes = t.byteSize() / Math.max(1, t.numel());
        MemorySegment src = data.asSlice(t.begin() + first * bytes, n * bytes);
        switch (t.dtype()) {
            // Both sides are little-endian float32: a plain byte copy.
            case F32 -> MemorySegment.copy(src, 0, dst, 0, n * 4);
            case F16 -> {
                for (long i = 0; i < n; i++) {
                    dst.setAtIndex(F32_LE, i, Float.float16ToFloat(src.getAtIndex(I16_LE, i)));
                }
            }
            case BF16 -> {
                for (long i = 0; i < n; i++) {
                    dst.setAtIndex(F32_LE, i, Bf16.bf16ToF32(src.getAtIndex(I16_LE, i)));
                }
            }
            case F64 -> {
                for (long i = 0; i < n; i++) {
                    dst.setAtIndex(F32_LE, i, (float) src.getAtIndex(F64_LE, i));
                }
            }
            default -> throw new CheckpointException(path, name,
                    "cannot read dtype " + t.dtype() + " as float32");
        }
    }

    /** Reads an integer tensor (I64, or I32 widened), e.g. token ids. */
    public long[] readI64(String name) {
        TensorInfo t = info(name);
        long n = t.numel();
        if (t.dtype() != StDType.I64 && t.dtype() != StDType.I32) {
            throw new CheckpointException(path, name, "expected dtype I64 or I32, found " + t.dtype());
        }
        // Java arrays are int-indexed (with a little headroom the VM reserves).
        if (n > Integer.MAX_VALUE - 8) {
            throw new CheckpointException(path, name, "too many elements (" + n + ") to read into an array");
        }
        MemorySegment src = data.asSlice(t.begin(), t.byteSize());
        long[] out = new long[(int) n];
        if (t.dtype() == StDType.I64) {
            MemorySegment.copy(src, I64_LE, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = src.getAtIndex(I32_LE, i);
            }
        }
        return out;
    }

    /** Unmaps the file; segments from {@link #raw} become inaccessible. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    private TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new CheckpointException(path, "no tensor named '" + name + "'");
        }
        return t;
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long position) throws IOException {
        while (dst.hasRemaining()) {
            if (ch.read(dst, position + dst.position()) < 0) {
                throw new EOFException("file shrank while reading");
            }
        }
    }

    private static ObjectNode parseHeaderJson(Path file, ByteBuffer header) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(header)
                    .toString();
        } catch (CharacterCodingException e) {
            throw new CheckpointException(file, null, "header is not valid UTF-8", e);
        }
        return Json.parseObject(file, text, "header");
    }

    private static Map<String, String> parseMetadata(Path file, JsonNode node) {
        Map<String, String> out = new LinkedHashMap<>();
        if (node == null) {
            return out;
        }
        if (!node.isObject()) {
            throw new CheckpointException(file, METADATA_KEY + " must be an object of strings");
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw new CheckpointException(file, METADATA_KEY + " value for '" + e.getKey() + "' is not a string");
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
        return out;
    }

    private static Map<String, TensorInfo> parseTensors(Path file, ObjectNode json, long dataLen) {
        Map<String, TensorInfo> out = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : json.properties()) {
            if (!e.getKey().equals(METADATA_KEY)) {
                out.put(e.getKey(), parseTensor(file, e.getKey(), e.getValue(), dataLen));
            }
        }
        checkNoOverlap(file, out.values());
        return out;
    }

    private static TensorInfo parseTensor(Path file, String name, JsonNode node, long dataLen) {
        if (!node.isObject()) {
            throw new CheckpointException(file, name, "entry is not a JSON object");
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new CheckpointException(file, name, "missing or non-string 'dtype'");
        }
        StDType dtype = StDType.parse(dtypeNode.textValue());
        if (dtype == null) {
            throw new CheckpointException(file, name, "unknown dtype '" + dtypeNode.textValue() + "'");
        }

        JsonNode shapeNode = node.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new CheckpointException(file, name, "missing or non-array 'shape'");
        }
        long[] shape = new long[shapeNode.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeLong(file, name, shapeNode.get(i), "shape dimension");
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException ex) {
                throw new CheckpointException(file, name, "shape " + shapeNode + " has too many elements");
            }
        }

        JsonNode offsets = node.get("data_offsets");
        if (offsets == null || !offsets.isArray() || offsets.size() != 2) {
            throw new CheckpointException(file, name, "'data_offsets' must be an array [begin, end]");
        }
        long begin = nonNegativeLong(file, name, offsets.get(0), "data_offsets begin");
        long end = nonNegativeLong(file, name, offsets.get(1), "data_offsets end");
        if (begin > end) {
            throw new CheckpointException(file, name, "data_offsets begin " + begin + " is after end " + end);
        }
        if (end > dataLen) {
            throw new CheckpointException(file, name, "data_offsets end " + end
                    + " is past the end of the data section (" + dataLen + " bytes)");
        }
        long expected;
        try {
            expected = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException ex) {
            throw new CheckpointException(file, name, "shape " + shapeNode + " has too many elements");
        }
        if (end - begin != expected) {
            throw new CheckpointException(file, name, "data_offsets span " + (end - begin) + " bytes but "
                    + dtype + " " + shapeNode + " needs " + expected);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static long nonNegativeLong(Path file, String name, JsonNode n, String what) {
        if (n == null || !n.isIntegralNumber() || !n.canConvertToLong() || n.longValue() < 0) {
            throw new CheckpointException(file, name, what + " must be a non-negative integer, found " + n);
        }
        return n.longValue();
    }

    // Overlapping tensors would alias each other's bytes: whatever wrote the file was broken.
    private static void checkNoOverlap(Path file, Iterable<TensorInfo> infos) {
        List<TensorInfo> sorted = new ArrayList<>();
        for (TensorInfo t : infos) {
            // Empty tensors occupy no bytes, so they cannot overlap anything.
            if (t.byteSize() > 0) {
                sorted.add(t);
            }
        }
        sorted.sort(Comparator.comparingLong(TensorInfo::begin));
        for (int i = 1; i < sorted.size(); i++) {
            TensorInfo prev = sorted.get(i - 1);
            TensorInfo cur = sorted.get(i);
            if (cur.begin() < prev.end()) {
                throw new CheckpointException(file, cur.name(), "data overlaps tensor '" + prev.name() + "'");
            }
        }
    }
}
