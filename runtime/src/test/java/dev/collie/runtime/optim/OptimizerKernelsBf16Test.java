package dev.collie.runtime.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.collie.runtime.checkpoint.Bf16;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * The vectorised, parallel bf16 LOMO update against its scalar reference, bit for bit: sizes that
 * are not multiples of the vector length or of the parallel chunk, with and without weight decay,
 * and values that take every branch of stochastic rounding (NaN, infinities, values that would
 * round up into infinity, subnormals, zeros of both signs).
 */
class OptimizerKernelsBf16Test {

    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    @Property(tries = 60)
    void vectorUpdateEqualsScalarReference(@ForAll @IntRange(min = 0, max = 300_000) int n,
                                           @ForAll boolean decay, @ForAll int seed, @ForAll long valuesSeed) {
        Random rnd = new Random(valuesSeed);
        float lr = (float) Math.pow(10, -1 - rnd.nextInt(7));
        float scale = rnd.nextBoolean() ? 1f : rnd.nextFloat();
        float wd = decay ? 0.1f : 0f;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment p = arena.allocate(Math.max(1, n) * 2L);
            MemorySegment g = arena.allocate(Math.max(1, n) * 4L);
            for (int i = 0; i < n; i++) {
                p.setAtIndex(BF16, i, weight(rnd));
                g.setAtIndex(F32, i, gradient(rnd));
            }
            MemorySegment want = arena.allocate(p.byteSize());
            MemorySegment.copy(p, 0, want, 0, p.byteSize());
            OptimizerKernels.lomoUpdateBf16Scalar(want, g, n, lr, scale, wd, seed);
            OptimizerKernels.lomoUpdateBf16(p, g, n, lr, scale, wd, seed);
            for (int i = 0; i < n; i++) {
                assertEquals(want.getAtIndex(BF16, i), p.getAtIndex(BF16, i), "element " + i + " of " + n);
            }
        }
    }

    @Property(tries = 10)
    void elementsPastNAreNotTouched(@ForAll @IntRange(min = 0, max = 100) int n) {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment p = arena.allocate((n + 20) * 2L);
            MemorySegment g = arena.allocate((n + 20) * 4L);
            p.fill((byte) 0x3F);
            g.fill((byte) 0x3F);
            OptimizerKernels.lomoUpdateBf16(p, g, n, 0.5f, 1f, 0f, 1);
            for (long i = n; i < n + 20; i++) {
                assertEquals((short) 0x3F3F, p.getAtIndex(BF16, i), "element " + i);
            }
        }
    }

    /** Mostly ordinary weights, with every special case of the rounding mixed in. */
    private static short weight(Random rnd) {
        float f = switch (rnd.nextInt(40)) {
            case 0 -> Float.NaN;
            case 1 -> Float.POSITIVE_INFINITY;
            case 2 -> Float.NEGATIVE_INFINITY;
            case 3 -> Float.MAX_VALUE; // truncates to the largest bf16; may round up into infinity
            case 4 -> -Float.MAX_VALUE;
            case 5 -> Float.MIN_VALUE * rnd.nextInt(1000); // subnormal
            case 6 -> rnd.nextBoolean() ? 0f : -0f;
            default -> (float) rnd.nextGaussian();
        };
        return rnd.nextInt(40) == 0 ? (short) rnd.nextInt() : (short) (Float.floatToRawIntBits(f) >>> 16);
    }

    private static float gradient(Random rnd) {
        return switch (rnd.nextInt(60)) {
            case 0 -> Float.NaN;
            case 1 -> Float.POSITIVE_INFINITY;
            case 2 -> -Float.MAX_VALUE;
            case 3 -> Float.intBitsToFloat(rnd.nextInt());
            default -> (float) rnd.nextGaussian() * Bf16.bf16ToF32((short) 0x3F80);
        };
    }
}
