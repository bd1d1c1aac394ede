package dev.collie.runtime.checkpoint;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes safetensors files. Files are published atomically: readers see either the previous file
 * or the complete new one, never a torn write, even if the process dies or the disk fills up.
 *
 * <p>Inconsistent arguments (data size not matching shape and dtype, duplicate names) are caller
 * bugs and raise {@link IllegalArgumentException}; I/O failures raise {@link CheckpointException}.
 */
public final class SafetensorsWriter {

    /** One tensor to write: {@code data} holds numel * dtype.byteSize() little-endian bytes. */
    public record Entry(String name, StDType dtype, long[] shape, MemorySegment data) {

        public Entry {
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public long numel() {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }

        /** Bytes this tensor occupies in the file. */
        public long byteSize() {
            return Math.multiplyExact(numel(), dtype.byteSize());
        }
    }

    /** Test seam: runs after the temporary file is complete and synced, just before the rename. */
    static volatile IoHook beforeRename = IoHook.NONE;

    /** Test seam: runs after each tensor's bytes are written, while the file is still incomplete and unsynced. */
    static volatile IoHook afterTensor = IoHook.NONE;

    // Big enough to amortize system calls, small enough to not matter for the heap.
    private static final int CHUNK_BYTES = 1 << 20;

    private SafetensorsWriter() {}

    /**
     * Writes {@code entries} in the given order. {@code metadata} becomes the header's
     * {@code __metadata__}; null omits it.
     */
    public static void write(Path file, List<Entry> entries, Map<String, String> metadata) {
        validate(entries);
        publish(file, tmp -> writeNew(tmp, entries, metadata));
    }

    /**
     * Writes float32 tensors converted to {@code target} (F32, BF16 rounded to nearest even, or
     * F16 rounded to nearest even). Every entry must be F32; conversion is streamed chunk by
     * chunk, so no converted copy of a whole tensor is ever held in memory.
     */
    public static void writeF32(Path file, List<Entry> f32Entries, StDType target, Map<String, String> metadata) {
        if (target != StDType.F32 && target != StDType.BF16 && target != StDType.F16) {
            throw new IllegalArgumentException("writeF32 target must be F32, BF16 or F16, not " + target);
        }
        validate(f32Entries);
        for (Entry e : f32Entries) {
            if (e.dtype() != StDType.F32) {
                throw new IllegalArgumentException("tensor '" + e.name() + "' is " + e.dtype() + ", writeF32 needs F32");
            }
        }
        publish(file, tmp -> writeFile(tmp, f32Entries, target, metadata));
    }

    /**
     * Checks entries against each other and the format's rules.
     *
     * @throws IllegalArgumentException on the first problem
     */
    static void validate(List<Entry> entries) {
        Set<String> seen = new HashSet<>();
        for (Entry e : entries) {
            if (e.name().equals(SafetensorsFile.METADATA_KEY)) {
                throw new IllegalArgumentException("'" + SafetensorsFile.METADATA_KEY + "' is reserved and cannot name a tensor");
            }
            if (!seen.add(e.name())) {
                throw new IllegalArgumentException("duplicate tensor name '" + e.name() + "'");
            }
            for (long d : e.shape()) {
                if (d < 0) {
                    throw new IllegalArgumentException("tensor '" + e.name() + "' has negative shape " + Arrays.toString(e.shape()));
                }
            }
            if (e.data().byteSize() != e.byteSize()) {
                throw new IllegalArgumentException("tensor '" + e.name() + "' has " + e.data().byteSize()
                        + " data bytes, but " + e.dtype() + " " + Arrays.toString(e.shape()) + " needs " + e.byteSize());
            }
        }
    }

    /** Writes a new (not yet existing) file without conversion and forces it to disk; no atomicity of its own. */
    static void writeNew(Path file, List<Entry> entries, Map<String, String> metadata) throws IOException {
        writeFile(file, entries, null, metadata);
    }

    /** Puts {@code file} into place via a synced temporary sibling and an atomic rename. */
    private static void publish(Path file, Body body) {
        Path tmp = FsUtil.sibling(file, "tmp");
        boolean published = false;
        try {
            body.writeTo(tmp);
            beforeRename.run(tmp);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            published = true;
        } catch (IOException e) {
            throw new CheckpointException(file, null, "cannot write: " + CheckpointException.describe(e), e);
        } finally {
            if (!published) {
                FsUtil.deleteQuietly(tmp);
            }
        }
        FsUtil.syncDirectory(tmp.getParent());
    }

    @FunctionalInterface
    private interface Body {
        void writeTo(Path tmp) throws IOException;
    }

    /** {@code target} null means every entry is written in its own dtype. */
    private static void writeFile(Path file, List<Entry> entries, StDType target, Map<String, String> metadata)
            throws IOException {
        List<StDType> outTypes = new ArrayList<>(entries.size());
        for (Entry e : entries) {
            outTypes.add(target == null ? e.dtype() : target);
        }
        byte[] header = header(entries, outTypes, metadata);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            FsUtil.writeAll(ch, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length));
            FsUtil.writeAll(ch, ByteBuffer.wrap(header));
            ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK_BYTES);
            MemorySegment staging = MemorySegment.ofBuffer(buf);
            for (int i = 0; i < entries.size(); i++) {
                Entry e = entries.get(i);
                StDType out = outTypes.get(i);
                if (out == e.dtype()) {
                    copyTensor(ch, e.data(), staging, buf);
                } else {
                    convertTensor(ch, e.data(), out, staging, buf);
                }
                afterTensor.run(file);
            }
            ch.force(true);
        }
    }

    private static void copyTensor(FileChannel ch, MemorySegment src, MemorySegment staging, ByteBuffer buf)
            throws IOException {
        // Staged through a direct buffer because not every segment (e.g. one over a float[]) can
        // be viewed as a ByteBuffer, and views are limited to 2 GiB anyway.
        for (long off = 0; off < src.byteSize(); off += CHUNK_BYTES) {
            int len = (int) Math.min(CHUNK_BYTES, src.byteSize() - off);
            MemorySegment.copy(src, off, staging, 0, len);
            FsUtil.writeAll(ch, buf.clear().limit(len));
        }
    }

    /** float32 to a 16-bit float type, both rounding to nearest even. */
    private static void convertTensor(FileChannel ch, MemorySegment f32, StDType out, MemorySegment staging,
                                      ByteBuffer buf) throws IOException {
        long n = f32.byteSize() / 4;
        long perChunk = CHUNK_BYTES / 2;
        for (long start = 0; start < n; start += perChunk) {
            int count = (int) Math.min(perChunk, n - start);
            for (int j = 0; j < count; j++) {
                float f = f32.getAtIndex(SafetensorsFile.F32_LE, start + j);
                short h = out == StDType.BF16 ? Bf16.f32ToBf16RoundNearestEven(f) : Float.floatToFloat16(f);
                staging.setAtIndex(SafetensorsFile.I16_LE, j, h);
            }
            FsUtil.writeAll(ch, buf.clear().limit(count * 2));
        }
    }

    /** Compact JSON, tensors laid out back to back in entry order, padded to 8 bytes like the reference writer. */
    private static byte[] header(List<Entry> entries, List<StDType> outTypes, Map<String, String> metadata)
            throws IOException {
        ObjectNode root = Json.MAPPER.createObjectNode();
        if (metadata != null) {
            ObjectNode meta = root.putObject(SafetensorsFile.METADATA_KEY);
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            StDType out = outTypes.get(i);
            long size = Math.multiplyExact(e.numel(), out.byteSize());
            ObjectNode t = root.putObject(e.name());
            t.put("dtype", out.name());
            ArrayNode shape = t.putArray("shape");
            for (long d : e.shape()) {
                shape.add(d);
            }
            t.putArray("data_offsets").add(offset).add(offset + size);
            offset += size;
        }
        byte[] json = Json.MAPPER.writeValueAsBytes(root);
        // Padding keeps the data section 8-byte aligned in the file, so mmap readers can use aligned access.
        int padded = (json.length + 7) & ~7;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }
}
