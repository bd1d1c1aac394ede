package dev.collie.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** Builders for tensor data and hand-made safetensors bytes. */
final class TestData {

    private TestData() {}

    static MemorySegment f32(float... values) {
        MemorySegment s = Arena.ofAuto().allocate(values.length * 4L);
        for (int i = 0; i < values.length; i++) {
            s.setAtIndex(SafetensorsFile.F32_LE, i, values[i]);
        }
        return s;
    }

    static MemorySegment randomF32(long n, long seed) {
        Random r = new Random(seed);
        MemorySegment s = Arena.ofAuto().allocate(n * 4);
        for (long i = 0; i < n; i++) {
            s.setAtIndex(SafetensorsFile.F32_LE, i, (float) r.nextGaussian());
        }
        return s;
    }

    /** Arbitrary bytes, so every bit pattern (NaNs, subnormals) of a dtype shows up. */
    static MemorySegment randomBytes(long n, long seed) {
        byte[] b = new byte[(int) n];
        new Random(seed).nextBytes(b);
        MemorySegment s = Arena.ofAuto().allocate(n);
        MemorySegment.copy(MemorySegment.ofArray(b), 0, s, 0, n);
        return s;
    }

    static MemorySegment i64(long... values) {
        MemorySegment s = Arena.ofAuto().allocate(values.length * 8L);
        for (int i = 0; i < values.length; i++) {
            s.setAtIndex(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, values[i]);
        }
        return s;
    }

    static void assertSameBytes(MemorySegment expected, MemorySegment actual) {
        assertEquals(expected.byteSize(), actual.byteSize(), "byte size");
        assertEquals(-1, expected.mismatch(actual), "first differing byte");
    }

    /** Writes a safetensors file with the given header text (unpadded) and {@code dataLen} zero bytes. */
    static Path craft(Path file, String header, int dataLen) throws IOException {
        return craft(file, header.getBytes(StandardCharsets.UTF_8), header.length(), dataLen);
    }

    /** Like {@link #craft(Path, String, int)} but with raw header bytes and any declared length. */
    static Path craft(Path file, byte[] header, long declaredLen, int dataLen) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + dataLen).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(declaredLen).put(header);
        Files.write(file, b.array());
        return file;
    }

    /** The checks every user-facing error must pass. */
    static void assertUserMessage(CheckpointException e, Path file, String tensor, String fragment) {
        String msg = e.getMessage();
        assertTrue(msg.startsWith(file + ": error: "), msg);
        assertFalse(msg.contains("\n") || msg.contains("\r"), msg);
        assertTrue(msg.contains(fragment), () -> "expected '" + fragment + "' in: " + msg);
        assertEquals(file, e.file());
        assertEquals(tensor, e.tensor());
        if (tensor != null) {
            assertTrue(msg.contains("tensor '" + tensor + "'"), msg);
        }
    }
}
