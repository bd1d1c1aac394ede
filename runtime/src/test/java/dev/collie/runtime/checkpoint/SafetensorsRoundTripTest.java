package dev.collie.runtime.checkpoint;

import static dev.collie.runtime.checkpoint.TestData.assertSameBytes;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.checkpoint.SafetensorsWriter.Entry;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsRoundTripTest {

    @TempDir
    Path tmp;

    @Test
    void everyDtypeRoundTripsBitExact() throws Exception {
        List<Entry> entries = List.of(
                new Entry("f32", StDType.F32, new long[] {3, 5}, TestData.randomBytes(60, 1)),
                new Entry("bf16", StDType.BF16, new long[] {7, 2}, TestData.randomBytes(28, 2)),
                new Entry("f16", StDType.F16, new long[] {9}, TestData.randomBytes(18, 3)),
                new Entry("i64", StDType.I64, new long[] {2, 2}, TestData.i64(Long.MIN_VALUE, -1, 0, Long.MAX_VALUE)),
                new Entry("scalar", StDType.F64, new long[] {}, TestData.randomBytes(8, 4)),
                new Entry("empty", StDType.I32, new long[] {0, 4}, MemorySegment.NULL));
        Path file = tmp.resolve("all.safetensors");
        SafetensorsWriter.write(file, entries, Map.of("format", "pt"));

        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(List.of("f32", "bf16", "f16", "i64", "scalar", "empty"), List.copyOf(f.tensors().keySet()));
            assertEquals(Map.of("format", "pt"), f.metadata());
            for (Entry e : entries) {
                TensorInfo info = f.tensors().get(e.name());
                assertEquals(e.dtype(), info.dtype());
                assertArrayEquals(e.shape(), info.shape());
                assertSameBytes(e.data(), f.raw(e.name()));
            }
            assertArrayEquals(new long[] {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE}, f.readI64("i64"));
        }
    }

    @Test
    void headerMatchesReferenceLayout() throws Exception {
        Path file = tmp.resolve("h.safetensors");
        SafetensorsWriter.write(file, List.of(new Entry("a", StDType.F32, new long[] {1}, TestData.f32(1f))),
                Map.of("format", "pt"));
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        long headerLen = bytes.getLong(0);
        assertEquals(0, headerLen % 8, "data section must start 8-byte aligned");
        String header = new String(bytes.array(), 8, (int) headerLen, StandardCharsets.UTF_8);
        assertEquals("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                header.stripTrailing());
        assertEquals(8 + headerLen + 4, Files.size(file));
    }

    @Test
    void bf16AndF16WidenExactly() throws Exception {
        // Every 16-bit pattern once, so all NaNs, subnormals and infinities are covered.
        MemorySegment all = Arena.ofAuto().allocate(65536 * 2);
        for (int h = 0; h < 65536; h++) {
            all.setAtIndex(SafetensorsFile.I16_LE, h, (short) h);
        }
        Path file = tmp.resolve("half.safetensors");
        SafetensorsWriter.write(file, List.of(
                new Entry("bf16", StDType.BF16, new long[] {65536}, all),
                new Entry("f16", StDType.F16, new long[] {256, 256}, all)), null);

        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            MemorySegment dst = Arena.ofAuto().allocate(65536 * 4);
            f.readAsF32("bf16", dst);
            for (int h = 0; h < 65536; h++) {
                assertEquals(h << 16, Float.floatToRawIntBits(dst.getAtIndex(SafetensorsFile.F32_LE, h)));
            }
            f.readAsF32("f16", dst);
            for (int h = 0; h < 65536; h++) {
                float v = dst.getAtIndex(SafetensorsFile.F32_LE, h);
                if (Float.isNaN(v)) {
                    assertTrue(Float.isNaN(Float.float16ToFloat((short) h)));
                } else {
                    assertEquals((short) h, Float.floatToFloat16(v), "f16 " + Integer.toHexString(h));
                }
            }
        }
    }

    @Test
    void f32AndF64ReadAsF32() throws Exception {
        MemorySegment f64 = Arena.ofAuto().allocate(16);
        f64.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, 0.1);
        f64.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 1, -3.5);
        MemorySegment f32 = TestData.randomF32(10, 5);
        Path file = tmp.resolve("f.safetensors");
        SafetensorsWriter.write(file, List.of(
                new Entry("f64", StDType.F64, new long[] {2}, f64),
                new Entry("f32", StDType.F32, new long[] {10}, f32)), null);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            MemorySegment dst = Arena.ofAuto().allocate(8);
            f.readAsF32("f64", dst);
            assertEquals(0.1f, dst.getAtIndex(SafetensorsFile.F32_LE, 0));
            assertEquals(-3.5f, dst.getAtIndex(SafetensorsFile.F32_LE, 1));
            MemorySegment back = Arena.ofAuto().allocate(40);
            f.readAsF32("f32", back);
            assertSameBytes(f32, back);
            assertThrows(IllegalArgumentException.class, () -> f.readAsF32("f32", Arena.ofAuto().allocate(36)));
        }
    }

    @Test
    void writeF32ConvertsAcrossChunkBoundaries() throws Exception {
        // More elements than one 1 MiB chunk holds, so chunk seams are exercised.
        long n = 700_000;
        MemorySegment src = TestData.randomF32(n, 6);
        for (StDType target : List.of(StDType.F32, StDType.BF16, StDType.F16)) {
            Path file = tmp.resolve(target + ".safetensors");
            SafetensorsWriter.writeF32(file, List.of(new Entry("w", StDType.F32, new long[] {700, 1000}, src)),
                    target, Map.of());
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                TensorInfo info = f.tensors().get("w");
                assertEquals(target, info.dtype());
                MemorySegment raw = f.raw("w");
                for (long i = 0; i < n; i++) {
                    float x = src.getAtIndex(SafetensorsFile.F32_LE, i);
                    switch (target) {
                        case F32 -> assertEquals(Float.floatToRawIntBits(x),
                                Float.floatToRawIntBits(raw.getAtIndex(SafetensorsFile.F32_LE, i)));
                        case BF16 -> assertEquals(Bf16.f32ToBf16RoundNearestEven(x), raw.getAtIndex(SafetensorsFile.I16_LE, i));
                        default -> assertEquals(Float.floatToFloat16(x), raw.getAtIndex(SafetensorsFile.I16_LE, i));
                    }
                }
            }
        }
    }

    @Test
    void readI64WidensI32() throws Exception {
        MemorySegment i32 = Arena.ofAuto().allocate(12);
        int[] values = {Integer.MIN_VALUE, 7, Integer.MAX_VALUE};
        for (int i = 0; i < 3; i++) {
            i32.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, values[i]);
        }
        Path file = tmp.resolve("ids.safetensors");
        SafetensorsWriter.write(file, List.of(new Entry("ids", StDType.I32, new long[] {3}, i32)), null);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertArrayEquals(new long[] {Integer.MIN_VALUE, 7, Integer.MAX_VALUE}, f.readI64("ids"));
        }
    }

    @Test
    void wrongDtypeAndUnknownNameAreUserErrors() throws Exception {
        Path file = tmp.resolve("x.safetensors");
        SafetensorsWriter.write(file, List.of(
                new Entry("ids", StDType.I64, new long[] {1}, TestData.i64(1)),
                new Entry("w", StDType.F32, new long[] {1}, TestData.f32(1f))), null);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            TestData.assertUserMessage(assertThrows(CheckpointException.class,
                    () -> f.readAsF32("ids", Arena.ofAuto().allocate(4))), file, "ids", "as float32");
            TestData.assertUserMessage(assertThrows(CheckpointException.class, () -> f.readI64("w")),
                    file, "w", "expected dtype I64 or I32");
            TestData.assertUserMessage(assertThrows(CheckpointException.class, () -> f.raw("nope")),
                    file, null, "no tensor named 'nope'");
        }
    }

    @Test
    void closeUnmaps() throws Exception {
        Path file = tmp.resolve("c.safetensors");
        SafetensorsWriter.write(file, List.of(new Entry("w", StDType.F32, new long[] {1}, TestData.f32(1f))), null);
        SafetensorsFile f = SafetensorsFile.open(file);
        MemorySegment raw = f.raw("w");
        f.close();
        assertThrows(IllegalStateException.class, () -> raw.get(ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void inconsistentEntriesAreRejectedBeforeWriting() {
        Path file = tmp.resolve("bad.safetensors");
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(file,
                List.of(new Entry("w", StDType.F32, new long[] {2}, TestData.f32(1f))), null));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(file, List.of(
                new Entry("w", StDType.F32, new long[] {1}, TestData.f32(1f)),
                new Entry("w", StDType.F32, new long[] {1}, TestData.f32(1f))), null));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.writeF32(file,
                List.of(new Entry("w", StDType.F32, new long[] {1}, TestData.f32(1f))), StDType.I8, null));
        assertTrue(Files.notExists(file));
    }
}
