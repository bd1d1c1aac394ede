package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
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

import static dev.collie.runtime.kernels.AttentionCase.F32;
import static dev.collie.runtime.kernels.AttentionCase.assertClose;
import static dev.collie.runtime.kernels.AttentionCase.bitIdentical;
import static dev.collie.runtime.kernels.AttentionCase.floats;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FlashAttentionTest {

    /**
     * Summation order differs from the reference (FMA, tiles, float online softmax), so results
     * are close, not equal. Errors are judged relative to {@code |expected| + m}, where m is the
     * RMS size of the terms summed into each element ({@link AttentionCase#termMagnitudes}).
     */
    private static final double RTOL = 1e-5;

    /**
     * Peaked inputs (scores of size ~30 instead of ~1): the softmax turns the absolute rounding
     * of a score, proportional to its size, into relative error of its probability, in the
     * reference as much as here, so the two agree to a few 1e-5 only.
     */
    private static final double RTOL_PEAKED = 5e-5;

    private static final int[] HEAD_SIZES = {1, 3, 16, 17, 48, 64, 80, 128};
    private static final int[] LENGTHS = {1, 2, 17, 64, 65, 130};

    // ---------------------------------------------------------------------------------------
    // Against the scalar reference
    // ---------------------------------------------------------------------------------------

    static Stream<Arguments> everyHeadSizeAndLength() {
        List<Arguments> cases = new ArrayList<>();
        int i = 0;
        for (int D : HEAD_SIZES) {
            for (int T : LENGTHS) {
                for (boolean causal : new boolean[] {true, false}) {
                    AttentionCase.Segments segments = AttentionCase.Segments.values()[i++ % 3];
                    cases.add(Arguments.of(D, T, causal, segments));
                }
            }
        }
        return cases.stream();
    }

    /** Every listed head size (vector tails) and length (tile tails), grouped-query heads H=4, KV=2. */
    @ParameterizedTest(name = "D={0} T={1} causal={2} segments={3}")
    @MethodSource("everyHeadSizeAndLength")
    void matchesReferenceForEveryHeadSizeAndLength(int D, int T, boolean causal, AttentionCase.Segments segments) {
        try (Arena arena = Arena.ofShared()) {
            AttentionCase c = new AttentionCase(arena, 31L * D + T, 2, 4, 2, T, D, causal, segments, 1f);
            checkAgainstReference(arena, c, RTOL);
        }
    }

    @Provide
    Arbitrary<int[]> heads() {
        // {H, KV}: grouped (4/2, 6/3), multi-head (H = KV) and multi-query (KV = 1).
        return Arbitraries.of(new int[] {4, 2}, new int[] {6, 3}, new int[] {2, 2}, new int[] {3, 3},
                new int[] {4, 1}, new int[] {1, 1});
    }

    @Provide
    Arbitrary<Integer> lengths() {
        return Arbitraries.of(1, 2, 17, 64, 65, 130);
    }

    @Provide
    Arbitrary<Integer> headSizes() {
        return Arbitraries.of(1, 3, 16, 17, 48, 64, 80, 128);
    }

    @Property(tries = 120)
    void matchesReferenceOnRandomShapes(@ForAll("heads") int[] heads,
                                        @ForAll("lengths") int T,
                                        @ForAll("headSizes") int D,
                                        @ForAll boolean causal,
                                        @ForAll AttentionCase.Segments segments,
                                        @ForAll boolean batchOfTwo,
                                        @ForAll boolean peaked,
                                        @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            // Peaked (large) scores exercise the running-max rescaling of the online softmax.
            AttentionCase c = new AttentionCase(arena, seed, batchOfTwo ? 2 : 1, heads[0], heads[1], T, D, causal,
                    segments, peaked ? 3f : 1f);
            checkAgainstReference(arena, c, peaked ? RTOL_PEAKED : RTOL);
        }
    }

    /** Forward, lse, and backward with and without lse, against CpuKernels and a double log-sum-exp. */
    private static void checkAgainstReference(Arena arena, AttentionCase c, double rtol) {
        MemorySegment refOut = floats(arena, c.qSize());
        MemorySegment refDq = floats(arena, c.qSize());
        MemorySegment refDk = floats(arena, c.kvSize());
        MemorySegment refDv = floats(arena, c.kvSize());
        CpuKernels.attentionForward(c.q, c.k, c.v, refOut, c.B, c.H, c.KV, c.T, c.D, c.causal, c.scale, c.segments);
        CpuKernels.attentionBackward(c.q, c.k, c.v, c.dout, refDq, refDk, refDv, c.B, c.H, c.KV, c.T, c.D,
                c.causal, c.scale, c.segments);

        MemorySegment out = floats(arena, c.qSize());
        MemorySegment lse = floats(arena, (long) c.B * c.H * c.T);
        FlashAttention.forward(c.q, c.k, c.v, out, c.B, c.H, c.KV, c.T, c.D, c.causal, c.scale, c.segments, lse);
        double[] m = c.termMagnitudes();
        assertClose("out", out, refOut, c.qSize(), rtol, m[0]);
        checkLse(c, lse, rtol);

        MemorySegment outNoLse = floats(arena, c.qSize());
        FlashAttention.forward(c.q, c.k, c.v, outNoLse, c.B, c.H, c.KV, c.T, c.D, c.causal, c.scale, c.segments);
        assertTrue(bitIdentical(out, outNoLse, c.qSize()), "writing lse must not change out");

        for (boolean withLse : new boolean[] {true, false}) {
            MemorySegment dq = floats(arena, c.qSize());
            MemorySegment dk = floats(arena, c.kvSize());
            MemorySegment dv = floats(arena, c.kvSize());
            FlashAttention.backward(c.q, c.k, c.v, out, c.dout, dq, dk, dv, c.B, c.H, c.KV, c.T, c.D, c.causal,
                    c.scale, c.segments, withLse ? lse : null);
            assertClose("dq (lse " + withLse + ")", dq, refDq, c.qSize(), rtol, m[1]);
            assertClose("dk (lse " + withLse + ")", dk, refDk, c.kvSize(), rtol, m[2]);
            assertClose("dv (lse " + withLse + ")", dv, refDv, c.kvSize(), rtol, m[3]);
        }
    }

    /** lse[b,h,t] against {@code log Σ exp(score)} over the visible keys, in double. */
    private static void checkLse(AttentionCase c, MemorySegment lse, double rtol) {
        int group = c.H / c.KV;
        for (int b = 0; b < c.B; b++) {
            for (int h = 0; h < c.H; h++) {
                for (int t = 0; t < c.T; t++) {
                    double[] scores = new double[c.T];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int u = 0; u < c.T; u++) {
                        scores[u] = Double.NEGATIVE_INFINITY;
                        if (c.visible(b, t, u)) {
                            double dot = 0;
                            for (int d = 0; d < c.D; d++) {
                                dot += (double) c.q.getAtIndex(F32, (((long) b * c.H + h) * c.T + t) * c.D + d)
                                        * c.k.getAtIndex(F32, (((long) b * c.KV + h / group) * c.T + u) * c.D + d);
                            }
                            scores[u] = dot * c.scale;
                            max = Math.max(max, scores[u]);
                        }
                    }
                    double sum = 0;
                    for (double s : scores) {
                        sum += Math.exp(s - max);
                    }
                    double expected = max + Math.log(sum);
                    double actual = lse.getAtIndex(F32, ((long) b * c.H + h) * c.T + t);
                    assertTrue(Math.abs(actual - expected) <= rtol * (1 + Math.abs(expected)),
                            "lse[" + b + "," + h + "," + t + "] = " + actual + ", expected " + expected);
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Determinism and the optional lse
    // ---------------------------------------------------------------------------------------

    @Test
    void resultsAreBitIdenticalForOneTwoAndFourThreads() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            // Large enough to take the parallel path; T = 130 leaves a partial tile.
            AttentionCase c = new AttentionCase(arena, 7, 2, 4, 2, 130, 48, true, AttentionCase.Segments.PACKED, 2f);
            List<MemorySegment[]> runs = new ArrayList<>();
            for (int threads : new int[] {1, 2, 4}) {
                MemorySegment[] r = {floats(arena, c.qSize()), floats(arena, (long) c.B * c.H * c.T),
                        floats(arena, c.qSize()), floats(arena, c.kvSize()), floats(arena, c.kvSize()),
                        floats(arena, c.qSize()), floats(arena, c.kvSize()), floats(arena, c.kvSize())};
                ForkJoinPool pool = new ForkJoinPool(threads);
                try {
                    pool.submit(() -> {
                        FlashAttention.forward(c.q, c.k, c.v, r[0], c.B, c.H, c.KV, c.T, c.D, c.causal, c.scale,
                                c.segments, r[1]);
                        FlashAttention.backward(c.q, c.k, c.v, r[0], c.dout, r[2], r[3], r[4], c.B, c.H, c.KV, c.T,
                                c.D, c.causal, c.scale, c.segments, r[1]);
                        FlashAttention.backward(c.q, c.k, c.v, r[0], c.dout, r[5], r[6], r[7], c.B, c.H, c.KV, c.T,
                                c.D, c.causal, c.scale, c.segments, null);
                    }).get();
                } finally {
                    pool.shutdown();
                }
                runs.add(r);
            }
            long[] sizes = {c.qSize(), (long) c.B * c.H * c.T, c.qSize(), c.kvSize(), c.kvSize(), c.qSize(),
                    c.kvSize(), c.kvSize()};
            String[] names = {"out", "lse", "dq", "dk", "dv", "dq(no lse)", "dk(no lse)", "dv(no lse)"};
            for (int run = 1; run < runs.size(); run++) {
                for (int i = 0; i < sizes.length; i++) {
                    assertTrue(bitIdentical(runs.get(0)[i], runs.get(run)[i], sizes[i]),
                            names[i] + " differs between 1 and " + (run == 1 ? 2 : 4) + " threads");
                }
            }
        }
    }

    @Test
    void backwardWithAndWithoutLseAgree() {
        try (Arena arena = Arena.ofShared()) {
            for (AttentionCase.Segments segments : AttentionCase.Segments.values()) {
                AttentionCase c = new AttentionCase(arena, 11, 2, 6, 2, 130, 80, true, segments, 3f);
                MemorySegment out = floats(arena, c.qSize());
                MemorySegment lse = floats(arena, (long) c.B * c.H * c.T);
                FlashAttention.forward(c.q, c.k, c.v, out, c.B, c.H, c.KV, c.T, c.D, c.causal, c.scale, c.segments,
                        lse);
                MemorySegment[] given = {floats(arena, c.qSize()), floats(arena, c.kvSize()), floats(arena, c.kvSize())};
                MemorySegment[] recomputed = {floats(arena, c.qSize()), floats(arena, c.kvSize()),
                        floats(arena, c.kvSize())};
                FlashAttention.backward(c.q, c.k, c.v, out, c.dout, given[0], given[1], given[2], c.B, c.H, c.KV, c.T,
                        c.D, c.causal, c.scale, c.segments, lse);
                FlashAttention.backward(c.q, c.k, c.v, out, c.dout, recomputed[0], recomputed[1], recomputed[2], c.B,
                        c.H, c.KV, c.T, c.D, c.causal, c.scale, c.segments, null);
                long[] sizes = {c.qSize(), c.kvSize(), c.kvSize()};
                for (int i = 0; i < 3; i++) {
                    assertClose(new String[] {"dq", "dk", "dv"}[i] + " " + segments, recomputed[i], given[i], sizes[i],
                            1e-6);
                }
            }
        }
    }

    @Test
    void rejectsHeadCountsThatDoNotGroup() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment x = floats(arena, 64);
            assertThrows(IllegalArgumentException.class,
                    () -> FlashAttention.forward(x, x, x, x, 1, 3, 2, 2, 4, true, 0.5f, null));
            assertThrows(IllegalArgumentException.class,
                    () -> FlashAttention.backward(x, x, x, x, x, x, x, x, 1, 4, 0, 2, 4, true, 0.5f, null, null));
        }
    }

    @Test
    void tileSizesFitTheVectorWidth() {
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        assertEquals(0, FlashAttention.BC % lanes);
        assertEquals(0, FlashAttention.BC % 4);
        assertEquals(0, FlashAttention.BR % 4);
    }
}
