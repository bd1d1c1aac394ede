package dev.collie.runtime.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class LomoTest {

    /**
     * The plain LOMO step must stay bit-identical to {@code p - (lr*scale)*g} with the step
     * rounded to float32 first: an existing golden test elsewhere depends on it. Sizes include
     * ones that are not multiples of 8, and the segments start at odd byte offsets.
     */
    @ParameterizedTest(name = "n = {0}")
    @ValueSource(ints = {1, 7, 9, 64, 1003})
    void weightDecayZeroIsBitExactPlainStep(int n) {
        Random rnd = new Random(n);
        float[] p = new float[n];
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            p[i] = (float) rnd.nextGaussian();
            g[i] = (float) (rnd.nextGaussian() * Math.exp(rnd.nextGaussian() * 3));
        }
        // Values whose product lr*scale is inexact in float32, so that a double step would differ.
        float lr = 3.7e-3f;
        float scale = 0.8123457f;
        float step = lr * scale;
        for (float wd : new float[] {0f, -0.25f}) { // LOMO only decays when wd > 0
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment ps = unalignedCopy(arena, p);
                MemorySegment gs = unalignedCopy(arena, g);
                OptimizerKernels.lomoUpdate(ps, gs, n, lr, scale, wd);
                for (int i = 0; i < n; i++) {
                    float expected = p[i] - step * g[i];
                    float actual = ps.getAtIndex(Segs.F32, i);
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual),
                            "wd=" + wd + " element " + i + ": expected " + expected + ", got " + actual);
                    assertEquals(g[i], gs.getAtIndex(Segs.F32, i), "gradient must be left untouched");
                }
            }
        }
    }

    @org.junit.jupiter.api.Test
    void touchesOnlyTheFirstNElements() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = Segs.of(arena, new float[] {1f, 1f, 1f, 1f});
            MemorySegment g = Segs.of(arena, new float[] {1f, 1f, 1f, 1f});
            OptimizerKernels.lomoUpdate(p, g, 3, 0.5f, 1f, 0.1f);
            float decayed = (float) (1.0 - 0.5 * (double) 0.1f) - 0.5f;
            assertEquals(decayed, p.getAtIndex(Segs.F32, 2));
            assertEquals(1f, p.getAtIndex(Segs.F32, 3));
        }
    }

    @org.junit.jupiter.api.Test
    void rejectsSegmentsShorterThanN() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = Segs.zeros(arena, 4);
            MemorySegment g = Segs.zeros(arena, 3);
            assertThrows(IllegalArgumentException.class, () -> OptimizerKernels.lomoUpdate(p, g, 4, 1f, 1f, 0f));
            assertThrows(IllegalArgumentException.class, () -> OptimizerKernels.lomoUpdate(p, p, -1, 1f, 1f, 0f));
        }
    }

    /** Copy placed one byte into a larger segment, so float accesses are misaligned. */
    private static MemorySegment unalignedCopy(Arena arena, float[] v) {
        MemorySegment backing = arena.allocate((long) v.length * Float.BYTES + 1, 8);
        MemorySegment s = backing.asSlice(1, (long) v.length * Float.BYTES);
        for (int i = 0; i < v.length; i++) {
            s.setAtIndex(Segs.F32, i, v[i]);
        }
        return s;
    }

    /**
     * The vector kernel (parallel chunks of 64K elements) against its scalar definition, bit for bit:
     * lengths that are not multiples of the vector width, several chunks, unaligned segments, with and
     * without weight decay.
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 5, 17, 1003, 65536, 65539, 200_003})
    void vectorUpdateIsTheScalarDefinition(int n) {
        Random rnd = new Random(n + 11);
        float[] p = new float[n];
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            p[i] = (float) rnd.nextGaussian();
            g[i] = (float) (rnd.nextGaussian() * Math.exp(rnd.nextGaussian() * 3));
        }
        for (float wd : new float[] {0f, 0.1f}) {
            try (Arena arena = Arena.ofShared()) {
                MemorySegment vector = unalignedCopy(arena, p);
                MemorySegment scalar = unalignedCopy(arena, p);
                MemorySegment gs = unalignedCopy(arena, g);
                OptimizerKernels.lomoUpdate(vector, gs, n, 3.7e-3f, 0.8123457f, wd);
                OptimizerKernels.lomoUpdateScalar(scalar, gs, n, 3.7e-3f, 0.8123457f, wd);
                for (int i = 0; i < n; i++) {
                    assertEquals(Float.floatToRawIntBits(scalar.getAtIndex(Segs.F32, i)),
                            Float.floatToRawIntBits(vector.getAtIndex(Segs.F32, i)), "wd=" + wd + " element " + i);
                }
            }
        }
    }
}
