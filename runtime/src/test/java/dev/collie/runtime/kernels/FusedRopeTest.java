package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static dev.collie.runtime.kernels.AttentionCase.I64;
import static dev.collie.runtime.kernels.AttentionCase.bitIdentical;
import static dev.collie.runtime.kernels.AttentionCase.floats;
import static dev.collie.runtime.kernels.AttentionCase.random;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FusedRopeTest {

    /** Same tables and unfused products as the reference, so the results are bit-identical. */
    private static void checkBitIdentical(int B, int H, int T, int D, double theta, boolean inverse,
                                          boolean withPositions, long seed) {
        try (Arena arena = Arena.ofShared()) {
            Random rnd = new Random(seed);
            long n = (long) B * H * T * D;
            MemorySegment x = random(arena, n, rnd, 2f);
            MemorySegment positions = null;
            if (withPositions) {
                positions = arena.allocate((long) B * T * 8, 8);
                for (long i = 0; i < (long) B * T; i++) {
                    positions.setAtIndex(I64, i, rnd.nextInt(3 * T + 5));
                }
            }
            MemorySegment expected = floats(arena, n);
            MemorySegment actual = floats(arena, n);
            CpuKernels.rope(x, expected, B, H, T, D, theta, inverse, positions);
            FusedRope.rope(x, actual, B, H, T, D, theta, inverse, positions);
            assertTrue(bitIdentical(actual, expected, n),
                    "rope differs for B=" + B + " H=" + H + " T=" + T + " D=" + D + " inverse=" + inverse);
        }
    }

    @ParameterizedTest(name = "D={0}")
    @ValueSource(ints = {2, 4, 6, 16, 18, 34, 48, 64, 80, 128, 256})
    void matchesReferenceForEveryVectorTail(int D) {
        for (boolean inverse : new boolean[] {false, true}) {
            for (boolean positions : new boolean[] {false, true}) {
                checkBitIdentical(2, 3, 17, D, 10000.0, inverse, positions, D);
            }
        }
    }

    @Property(tries = 60)
    void matchesReferenceOnRandomShapes(@ForAll @IntRange(min = 1, max = 3) int B,
                                        @ForAll @IntRange(min = 1, max = 6) int H,
                                        @ForAll @IntRange(min = 1, max = 70) int T,
                                        @ForAll @IntRange(min = 1, max = 72) int halfD,
                                        @ForAll boolean inverse,
                                        @ForAll boolean positions,
                                        @ForAll boolean llama3Theta,
                                        @ForAll long seed) {
        checkBitIdentical(B, H, T, 2 * halfD, llama3Theta ? 500000.0 : 10000.0, inverse, positions, seed);
    }

    @Test
    void inverseUndoesTheRotation() {
        try (Arena arena = Arena.ofShared()) {
            int B = 2, H = 4, T = 33, D = 48;
            long n = (long) B * H * T * D;
            MemorySegment x = random(arena, n, new Random(3), 1f);
            MemorySegment y = floats(arena, n);
            MemorySegment back = floats(arena, n);
            FusedRope.rope(x, y, B, H, T, D, 10000.0, false);
            FusedRope.rope(y, back, B, H, T, D, 10000.0, true);
            AttentionCase.assertClose("x", back, x, n, 1e-6);
        }
    }

    @Test
    void tableIsBuiltOnceAndReused() {
        double theta = 12345.0;
        FusedRope.Table first = FusedRope.table(theta, 64, 256);
        assertSame(first, FusedRope.table(theta, 64, 256));
        assertSame(first, FusedRope.table(theta, 64, 17), "a larger table serves smaller positions");
        FusedRope.Table grown = FusedRope.table(theta, 64, 300);
        assertTrue(grown.rows() >= 300);
        assertSame(grown, FusedRope.table(theta, 64, 256));
        // Growing keeps every earlier entry (they do not depend on the table's size).
        for (int i = 0; i < first.cos().length; i++) {
            assertTrue(first.cos()[i] == grown.cos()[i] && first.sin()[i] == grown.sin()[i]);
        }
    }

    @Test
    void rejectsOddHeadSizeOverlapAndBadPositions() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment x = floats(arena, 64);
            MemorySegment out = floats(arena, 64);
            assertThrows(IllegalArgumentException.class, () -> FusedRope.rope(x, out, 1, 1, 2, 3, 1e4, false));
            assertThrows(IllegalArgumentException.class, () -> FusedRope.rope(x, x, 1, 1, 2, 4, 1e4, false));
            MemorySegment positions = arena.allocate(16, 8);
            positions.setAtIndex(I64, 1, -1);
            assertThrows(IllegalArgumentException.class,
                    () -> FusedRope.rope(x, out, 1, 1, 2, 4, 1e4, false, positions));
        }
    }
}
