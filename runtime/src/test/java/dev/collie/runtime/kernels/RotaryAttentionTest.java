package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import static dev.collie.runtime.kernels.AttentionCase.I64;
import static dev.collie.runtime.kernels.AttentionCase.floats;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The token-major form of FlashAttention with the rotation in its prologue (the compiler's
 * {@code rotary_attention} and its gradient) against what it replaces: FusedRope's split-and-rotate
 * into head-major [B, H, T, D], the head-major kernel, and the merge (with the inverse rotation for dq
 * and dk) back to [B, T, H*D]. Same arithmetic in another order of memory, so equal bit for bit.
 */
class RotaryAttentionTest {

    private static final double THETA = 10000.0;

    /** How the [B, T] positions are given. */
    enum Positions {
        /** No positions tensor: each token's index t. */
        NONE,
        /** Packed examples: positions restart at 0 at random boundaries. */
        RESTARTING,
        /** Positions far beyond T (a continuation), so the table grows past T rows. */
        OFFSET
    }

    static Stream<Arguments> headSizesAndLengths() {
        List<Arguments> cases = new ArrayList<>();
        int i = 0;
        for (int D : new int[] {2, 6, 10, 48, 64}) {
            for (int T : new int[] {1, 17, 65, 130}) {
                AttentionCase.Segments segments = AttentionCase.Segments.values()[i % 3];
                Positions positions = Positions.values()[i / 3 % 3];
                cases.add(Arguments.of(D, T, i % 2 == 0, segments, positions));
                i++;
            }
        }
        return cases.stream();
    }

    /** Head sizes that are and are not a multiple of the vector width (and of half of it), tile tails, GQA 4/2. */
    @ParameterizedTest(name = "D={0} T={1} causal={2} segments={3} positions={4}")
    @MethodSource("headSizesAndLengths")
    void equalsRotateThenHeadMajorAttentionThenMerge(int D, int T, boolean causal, AttentionCase.Segments segments,
                                                      Positions positions) {
        try (Arena arena = Arena.ofShared()) {
            check(arena, new AttentionCase(arena, 97L * D + T, 2, 4, 2, T, D, causal, segments, 1f), positions, true);
        }
    }

    @Provide
    Arbitrary<int[]> heads() {
        // {H, KV}: grouped (4/2, 6/3, 8/2), multi-head (H = KV) and multi-query (KV = 1).
        return Arbitraries.of(new int[] {4, 2}, new int[] {6, 3}, new int[] {8, 2}, new int[] {2, 2},
                new int[] {3, 3}, new int[] {4, 1}, new int[] {1, 1});
    }

    @Provide
    Arbitrary<Integer> lengths() {
        return Arbitraries.of(1, 2, 17, 64, 65, 130);
    }

    @Provide
    Arbitrary<Integer> headSizes() {
        return Arbitraries.of(2, 6, 10, 16, 34, 48, 64, 80);
    }

    @Property(tries = 60)
    void equalsTheUnfusedOpsOnRandomShapes(@ForAll("heads") int[] heads,
                                           @ForAll("lengths") int T,
                                           @ForAll("headSizes") int D,
                                           @ForAll boolean causal,
                                           @ForAll AttentionCase.Segments segments,
                                           @ForAll Positions positions,
                                           @ForAll boolean rotary,
                                           @ForAll boolean batchOfTwo,
                                           @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            AttentionCase c = new AttentionCase(arena, seed, batchOfTwo ? 2 : 1, heads[0], heads[1], T, D, causal,
                    segments, 2f);
            check(arena, c, positions, rotary);
        }
    }

    @Test
    void rejectsAnOddHeadSizeAndNegativePositionsWhenRotating() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment x = floats(arena, 64);
            assertThrows(IllegalArgumentException.class, () -> FlashAttention.forwardTokenMajor(x, x, x, x, 1, 2, 2, 2,
                    3, true, 0.5f, null, null, new FlashAttention.Rotary(THETA, null)));
            MemorySegment pos = arena.allocate(16, 8);
            pos.setAtIndex(I64, 1, -1);
            assertThrows(IllegalArgumentException.class, () -> FlashAttention.backwardTokenMajor(x, x, x, x, x, x, x, x,
                    1, 2, 2, 2, 4, true, 0.5f, null, null, new FlashAttention.Rotary(THETA, pos)));
        }
    }

    /**
     * Reads the case's q, k, v and dout as token-major [B, T, H*D] (and [B, T, KV*D]) projections and
     * compares the fused forward (out, lse) and backward (dq, dk, dv, with the forward's lse and
     * without) with the unfused sequence, bit for bit.
     */
    private static void check(Arena arena, AttentionCase c, Positions layout, boolean rotary) {
        int B = c.B, H = c.H, KV = c.KV, T = c.T, D = c.D;
        MemorySegment pos = positions(arena, layout, c);
        FlashAttention.Rotary rotation = rotary ? new FlashAttention.Rotary(THETA, pos) : null;
        long lseSize = (long) B * H * T;

        // The reference: split (and rotate), head-major attention, merge (and rotate back).
        MemorySegment qh = floats(arena, c.qSize());
        MemorySegment kh = floats(arena, c.kvSize());
        MemorySegment vh = floats(arena, c.kvSize());
        if (rotary) {
            FusedRope.rope(c.q, true, qh, false, B, H, T, D, THETA, false, pos);
            FusedRope.rope(c.k, true, kh, false, B, KV, T, D, THETA, false, pos);
        } else {
            permute(c.q, qh, B, H, T, D, true);
            permute(c.k, kh, B, KV, T, D, true);
        }
        permute(c.v, vh, B, KV, T, D, true);
        MemorySegment outH = floats(arena, c.qSize());
        MemorySegment refLse = floats(arena, lseSize);
        FlashAttention.forward(qh, kh, vh, outH, B, H, KV, T, D, c.causal, c.scale, c.segments, refLse);
        MemorySegment refOut = floats(arena, c.qSize());
        permute(outH, refOut, B, H, T, D, false);

        MemorySegment out = floats(arena, c.qSize());
        MemorySegment lse = floats(arena, lseSize);
        FlashAttention.forwardTokenMajor(c.q, c.k, c.v, out, B, H, KV, T, D, c.causal, c.scale, c.segments, lse,
                rotation);
        assertBits("out", refOut, out, c.qSize());
        assertBits("lse", refLse, lse, lseSize);

        MemorySegment doutH = floats(arena, c.qSize());
        permute(c.dout, doutH, B, H, T, D, true);
        for (boolean withLse : new boolean[] {true, false}) {
            MemorySegment dqh = floats(arena, c.qSize());
            MemorySegment dkh = floats(arena, c.kvSize());
            MemorySegment dvh = floats(arena, c.kvSize());
            FlashAttention.backward(qh, kh, vh, outH, doutH, dqh, dkh, dvh, B, H, KV, T, D, c.causal, c.scale,
                    c.segments, withLse ? refLse : null);
            MemorySegment refDq = floats(arena, c.qSize());
            MemorySegment refDk = floats(arena, c.kvSize());
            MemorySegment refDv = floats(arena, c.kvSize());
            if (rotary) {
                FusedRope.rope(dqh, false, refDq, true, B, H, T, D, THETA, true, pos);
                FusedRope.rope(dkh, false, refDk, true, B, KV, T, D, THETA, true, pos);
            } else {
                permute(dqh, refDq, B, H, T, D, false);
                permute(dkh, refDk, B, KV, T, D, false);
            }
            permute(dvh, refDv, B, KV, T, D, false);

            MemorySegment dq = floats(arena, c.qSize());
            MemorySegment dk = floats(arena, c.kvSize());
            MemorySegment dv = floats(arena, c.kvSize());
            FlashAttention.backwardTokenMajor(c.q, c.k, c.v, out, c.dout, dq, dk, dv, B, H, KV, T, D, c.causal, c.scale,
                    c.segments, withLse ? lse : null, rotation);
            assertBits("dq (lse " + withLse + ")", refDq, dq, c.qSize());
            assertBits("dk (lse " + withLse + ")", refDk, dk, c.kvSize());
            assertBits("dv (lse " + withLse + ")", refDv, dv, c.kvSize());
        }
    }

    private static MemorySegment positions(Arena arena, Positions layout, AttentionCase c) {
        if (layout == Positions.NONE) {
            return null;
        }
        Random rnd = new Random(c.T * 31L + c.D);
        MemorySegment p = arena.allocate((long) c.B * c.T * 8, 8);
        for (int b = 0; b < c.B; b++) {
            long offset = 1000 + rnd.nextInt(1000);
            long next = 0;
            for (int t = 0; t < c.T; t++) {
                if (layout == Positions.RESTARTING && t > 0 && rnd.nextInt(Math.max(2, c.T / 3)) == 0) {
                    next = 0;
                }
                p.setAtIndex(I64, (long) b * c.T + t, layout == Positions.OFFSET ? offset + t : next++);
            }
        }
        return p;
    }

    /** [B, T, H*D] to [B, H, T, D] ({@code split}) or back: the layout kernels' copies. */
    private static void permute(MemorySegment src, MemorySegment dst, int B, int H, int T, int D, boolean split) {
        long row = D * 4L;
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                for (int t = 0; t < T; t++) {
                    long tokenMajor = (((long) b * T + t) * H + h) * row;
                    long headMajor = (((long) b * H + h) * T + t) * row;
                    if (split) {
                        MemorySegment.copy(src, tokenMajor, dst, headMajor, row);
                    } else {
                        MemorySegment.copy(src, headMajor, dst, tokenMajor, row);
                    }
                }
            }
        }
    }

    private static void assertBits(String what, MemorySegment want, MemorySegment got, long n) {
        for (long i = 0; i < n; i++) {
            int w = Float.floatToRawIntBits(want.getAtIndex(AttentionCase.F32, i));
            int g = Float.floatToRawIntBits(got.getAtIndex(AttentionCase.F32, i));
            if (w != g) {
                fail(what + "[" + i + "]: fused " + Float.intBitsToFloat(g) + ", unfused " + Float.intBitsToFloat(w));
            }
        }
    }
}
