package dev.collie.runtime.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.concurrent.ForkJoinPool;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * SimdGemm against the scalar {@link CpuKernels} and a double-precision reference, across
 * transposes, ragged shapes, accumulation, thread counts and unaligned segments.
 */
class SimdGemmTest {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Pools of 1, 2 and 4 workers; shared by the JUnit and the jqwik engine, so never shut down. */
    private static final ForkJoinPool[] POOLS = {new ForkJoinPool(1), new ForkJoinPool(2), new ForkJoinPool(4)};

    enum Kind { NT, NN, TN }

    // ---------------------------------------------------------------------------------------
    // Properties
    // ---------------------------------------------------------------------------------------

    @Provide
    Arbitrary<Integer> edgeSizes() {
        return Arbitraries.of(1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 65, 127, 129);
    }

    @Provide
    Arbitrary<Integer> depths() {
        return Arbitraries.of(1, 3, 7, 15, 17, 31, 33, 63, 65, 127, 129, 255, 257, 301);
    }

    /** Every transpose, on ragged shapes, matches both references within float rounding. */
    @Property(tries = 250)
    void matchesReferences(@ForAll Kind kind, @ForAll("edgeSizes") int M, @ForAll("edgeSizes") int N,
                           @ForAll("depths") int K, @ForAll boolean accumulate,
                           @ForAll @IntRange(min = 0, max = 7) int misalign, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Problem p = new Problem(arena, kind, M, N, K, seed, misalign);
            MemorySegment got = p.run(accumulate, 2, POOLS[1]);
            p.assertClose(got, p.doubleReference(accumulate), "double reference");
            p.assertClose(got, p.scalarReference(accumulate), accumulate, "CpuKernels");
        }
    }

    /** Results are bit-identical whatever the thread count or pool. */
    @Property(tries = 60)
    void bitIdenticalAcrossThreadCounts(@ForAll Kind kind, @ForAll @IntRange(min = 1, max = 300) int M,
                                        @ForAll @IntRange(min = 1, max = 300) int N,
                                        @ForAll @IntRange(min = 1, max = 600) int K,
                                        @ForAll boolean accumulate, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Problem p = new Problem(arena, kind, M, N, K, seed, 0);
            float[] one = p.run(accumulate, 1, POOLS[0]).toArray(ValueLayout.JAVA_FLOAT);
            for (int t : new int[] {2, 3, 4, 8}) {
                for (ForkJoinPool pool : POOLS) {
                    float[] other = p.run(accumulate, t, pool).toArray(ValueLayout.JAVA_FLOAT);
                    assertArrayEquals(one, other, kind + " " + M + "x" + N + "x" + K + " threads=" + t);
                }
            }
            float[] byDefault = p.runDefaultThreads(accumulate, POOLS[2]).toArray(ValueLayout.JAVA_FLOAT);
            assertArrayEquals(one, byDefault);
        }
    }

    /**
     * Products with few rows in the NT layout are computed with the operands' roles swapped and the
     * output stored transposed ({@code SimdGemm.swapsOperands}): bit for bit the unswapped path, with
     * float and bf16 weights, accumulating or not, on one thread or several, across K slices, MC
     * blocks and partial micro-tiles, and with an epilogue that sees the output's coordinates.
     */
    @Property(tries = 40)
    void swappedOperandsGiveTheUnswappedBits(@ForAll @IntRange(min = 6, max = 140) int M,
                                             @ForAll @IntRange(min = 1, max = 400) int extraN,
                                             @ForAll @IntRange(min = 4, max = 820) int extraK,
                                             @ForAll boolean accumulate, @ForAll boolean bf16,
                                             @ForAll @IntRange(min = 1, max = 3) int threads,
                                             @ForAll long seed) throws Exception {
        int N = M + extraN;
        int K = SimdGemm.SWAP_DEPTH_RATIO * M + extraK;
        assertTrue(SimdGemm.swapsOperands(M, N, K, 1, K), M + "x" + N + "x" + K + " takes the swapped path");
        try (Arena arena = Arena.ofShared()) {
            Random rnd = new Random(seed);
            MemorySegment a = arena.allocate((long) M * K * 4, 64);
            MemorySegment b = arena.allocate((long) N * K * (bf16 ? 2 : 4), 64);
            MemorySegment start = arena.allocate((long) M * N * 4, 64);
            for (long i = 0; i < (long) M * K; i++) {
                a.setAtIndex(F32, i, (float) rnd.nextGaussian());
            }
            for (long i = 0; i < (long) N * K; i++) {
                float w = (float) rnd.nextGaussian();
                if (bf16) {
                    b.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) (Float.floatToRawIntBits(w) >>> 16));
                } else {
                    b.setAtIndex(F32, i, w);
                }
            }
            for (long i = 0; i < (long) M * N; i++) {
                start.setAtIndex(F32, i, (float) rnd.nextGaussian());
            }
            MemorySegment want = arena.allocate((long) M * N * 4, 64);
            MemorySegment got = arena.allocate((long) M * N * 4, 64);
            want.copyFrom(start);
            got.copyFrom(start);
            int[] seen = new int[M * N];
            ForkJoinPool pool = POOLS[Math.min(threads, 3) - 1];
            pool.submit(() -> SimdGemm.matmulNTUnswapped(a, b, bf16, want, M, N, K, accumulate, threads)).get();
            pool.submit(() -> SimdGemm.matmulNT(a, b, bf16, got, M, N, K, accumulate, (row0, rows, col0, cols) -> {
                for (int i = row0; i < row0 + rows; i++) {
                    for (int j = col0; j < col0 + cols; j++) {
                        seen[i * N + j]++;
                    }
                }
            })).get();
            assertArrayEquals(want.toArray(ValueLayout.JAVA_FLOAT), got.toArray(ValueLayout.JAVA_FLOAT),
                    M + "x" + N + "x" + K + (bf16 ? " bf16" : "") + (accumulate ? " accumulate" : ""));
            for (int e = 0; e < seen.length; e++) {
                assertEquals(1, seen[e], "element " + e + " handed to the epilogue once");
            }
        }
    }

    /**
     * Packing buffers are shared, not per thread: products run one after another on eight threads
     * that each end at once leave no more buffers behind than one product uses. Per-thread buffers
     * became garbage with every retired pool thread (0.4 GB of heap in a 7B run).
     */
    @Test
    void packingBuffersOutliveTheThreadsThatUsedThem() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            Problem p = new Problem(arena, Kind.NT, 64, 96, 80, 11, 0);
            p.run(false, 1, POOLS[0]);
            int before = SimdGemm.idleScratch();
            for (int t = 0; t < 8; t++) {
                MemorySegment out = arena.allocate(64L * 96 * 4, 64);
                Thread thread = new Thread(() -> SimdGemm.matmulNT(p.a, p.b, out, 64, 96, 80, false, 1));
                thread.start();
                thread.join();
            }
            assertTrue(SimdGemm.idleScratch() <= Math.max(before, 1),
                    SimdGemm.idleScratch() + " idle buffers after 8 threads, " + before + " before");
        }
    }

    /** Beyond SWAP_ROWS rows, or with B's rows contiguous, a wide activation or a shallow product, the roles stay. */
    @Test
    void swapsOnlyFewRowsOfTheNtLayout() {
        assertTrue(SimdGemm.swapsOperands(256, 5632, 2048, 1, 2048));
        assertTrue(!SimdGemm.swapsOperands(SimdGemm.SWAP_ROWS + 1, 5632, 2048, 1, 2048));
        assertTrue(!SimdGemm.swapsOperands(256, 5632, 2048, 1, 1), "NN layout");
        assertTrue(!SimdGemm.swapsOperands(256, 200, 2048, 1, 2048), "fewer columns than rows");
        assertTrue(!SimdGemm.swapsOperands(256, 2048, 5632, 1, 5632), "packed activation over the cap");
        assertTrue(!SimdGemm.swapsOperands(476, 32000, 288, 1, 288), "too shallow: the transposed store costs more");
        assertTrue(SimdGemm.swapsOperands(256, 32000, 2048, 1, 2048), "1b's head");
    }

    /**
     * The GELU epilogue of linear_gelu: the product is the plain GEMM's, and the activation is, bit for
     * bit, the vector GELU pass over it, for every thread count (blocks differ, elements must not), on
     * shapes that take the unpacked path, the packed one and cross the block edges.
     */
    @Property(tries = 40)
    void geluEpilogueEqualsTheProductThenTheActivation(@ForAll @IntRange(min = 1, max = 200) int M,
                                                       @ForAll @IntRange(min = 1, max = 300) int N,
                                                       @ForAll @IntRange(min = 1, max = 600) int K,
                                                       @ForAll boolean accumulate, @ForAll long seed) throws Exception {
        try (Arena arena = Arena.ofShared()) {
            java.util.Random rnd = new java.util.Random(seed);
            MemorySegment a = arena.allocate((long) M * K * 4, 64);
            MemorySegment b = arena.allocate((long) N * K * 4, 64);
            MemorySegment start = arena.allocate((long) M * N * 4, 64);
            for (long i = 0; i < (long) M * K; i++) {
                a.setAtIndex(F32, i, (float) rnd.nextGaussian());
            }
            for (long i = 0; i < (long) N * K; i++) {
                b.setAtIndex(F32, i, (float) rnd.nextGaussian() * 0.1f);
            }
            for (long i = 0; i < (long) M * N; i++) {
                start.setAtIndex(F32, i, (float) rnd.nextGaussian());
            }
            MemorySegment want = arena.allocate((long) M * N * 4, 64);
            MemorySegment wantAct = arena.allocate((long) M * N * 4, 64);
            want.copyFrom(start);
            POOLS[0].submit(() -> SimdGemm.matmulNT(a, b, want, M, N, K, accumulate)).get();
            VectorOps.geluTanhForward(want, wantAct, (long) M * N);
            for (ForkJoinPool pool : POOLS) {
                MemorySegment pre = arena.allocate((long) M * N * 4, 64);
                MemorySegment act = arena.allocate((long) M * N * 4, 64);
                pre.copyFrom(start);
                pool.submit(() -> SimdGemm.matmulNT(a, b, false, pre, M, N, K, accumulate,
                        (row0, rows, col0, cols) -> VectorOps.geluTanhBlock(pre, act, N, row0, rows, col0, cols))).get();
                assertArrayEquals(want.toArray(ValueLayout.JAVA_FLOAT), pre.toArray(ValueLayout.JAVA_FLOAT), "product");
                assertArrayEquals(wantAct.toArray(ValueLayout.JAVA_FLOAT), act.toArray(ValueLayout.JAVA_FLOAT),
                        "activation, " + pool.getParallelism() + " threads");
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Examples
    // ---------------------------------------------------------------------------------------

    /**
     * Shapes that cross the KC, MC, NB and NC block edges, force multi-task grids, or take the
     * unpacked path in parallel; checked against the double reference and, bit for bit, against
     * one thread.
     */
    @ParameterizedTest
    @CsvSource({
        "NT, 151, 70, 513", "NN, 151, 70, 513", "TN, 151, 70, 513",
        "NT, 300, 333, 300", "NN, 300, 333, 300", "TN, 300, 333, 300",
        "NT, 7, 4130, 9", "NN, 7, 4130, 9", "TN, 7, 4130, 9",
        "NT, 2, 4500, 40", "NN, 40, 3, 4500", "TN, 3000, 2, 40",
        // fewer rows than a micro-tile, enough work to split the unpacked path across threads
        "NT, 3, 5000, 300", "NN, 5, 3000, 200", "TN, 1, 6000, 400",
    })
    void blockEdges(Kind kind, int M, int N, int K) throws Exception {
        try (Arena arena = Arena.ofShared()) {
            for (boolean accumulate : new boolean[] {false, true}) {
                Problem p = new Problem(arena, kind, M, N, K, 42, 3);
                MemorySegment got = p.run(accumulate, 4, POOLS[2]);
                p.assertClose(got, p.doubleReference(accumulate), "double reference");
                float[] single = p.run(accumulate, 1, POOLS[0]).toArray(ValueLayout.JAVA_FLOAT);
                assertArrayEquals(single, got.toArray(ValueLayout.JAVA_FLOAT));
            }
        }
    }

    /** Byte offsets that are not even multiples of a float still work. */
    @Test
    void oddByteOffsets() {
        try (Arena arena = Arena.ofShared()) {
            for (Kind kind : Kind.values()) {
                int M = 37, N = 45, K = 29;
                Problem aligned = new Problem(arena, kind, M, N, K, 7, 0);
                float[] want = aligned.run(true, 2, POOLS[1]).toArray(ValueLayout.JAVA_FLOAT);
                for (int bytes : new int[] {1, 2, 3}) {
                    Problem odd = aligned.copyAtByteOffset(arena, bytes);
                    float[] got = odd.run(true, 2, POOLS[1]).toArray(ValueLayout.JAVA_FLOAT);
                    assertArrayEquals(want, got, kind + " offset " + bytes);
                }
            }
        }
    }

    /** Heap segments over float[] work like native ones. */
    @Test
    void heapSegments() {
        int M = 70, N = 50, K = 90;
        Random rnd = new Random(5);
        float[] a = new float[M * K];
        float[] b = new float[N * K];
        for (int i = 0; i < a.length; i++) a[i] = rnd.nextFloat() - 0.5f;
        for (int i = 0; i < b.length; i++) b[i] = rnd.nextFloat() - 0.5f;
        MemorySegment out = MemorySegment.ofArray(new float[M * N]);
        SimdGemm.matmulNT(MemorySegment.ofArray(a), MemorySegment.ofArray(b), out, M, N, K, false, 2);
        MemorySegment ref = MemorySegment.ofArray(new float[M * N]);
        CpuKernels.matmulNT(MemorySegment.ofArray(a), MemorySegment.ofArray(b), ref, M, N, K, false);
        for (int i = 0; i < M * N; i++) {
            assertEquals(ref.getAtIndex(F32, i), out.getAtIndex(F32, i), 1e-4f);
        }
    }

    /** Empty shapes: K = 0 zeroes the output (or leaves it when accumulating), M or N = 0 is a no-op. */
    @Test
    void emptyShapes() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(64);
            MemorySegment b = arena.allocate(64);
            MemorySegment out = arena.allocate(4 * 6);
            out.fill((byte) 0x3f);
            SimdGemm.matmulNN(a, b, out, 2, 3, 0, true);
            assertEquals(0x3f3f3f3f, out.getAtIndex(ValueLayout.JAVA_INT, 5));
            SimdGemm.matmulNN(a, b, out, 2, 3, 0, false);
            for (int i = 0; i < 6; i++) {
                assertEquals(0f, out.getAtIndex(F32, i));
            }
            out.fill((byte) 0x3f);
            SimdGemm.matmulNT(a, b, out, 0, 3, 4, false);
            SimdGemm.matmulTN(a, b, out, 4, 2, 0, false);
            assertEquals(0x3f3f3f3f, out.getAtIndex(ValueLayout.JAVA_INT, 0));
        }
    }

    @Test
    void rejectsShortSegmentsAndBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment small = arena.allocate(4L * 10);
            MemorySegment big = arena.allocate(4L * 1000);
            assertThrows(IndexOutOfBoundsException.class, () -> SimdGemm.matmulNT(small, big, big, 4, 4, 4, false));
            assertThrows(IndexOutOfBoundsException.class, () -> SimdGemm.matmulNN(big, big, small, 4, 4, 4, false));
            assertThrows(IllegalArgumentException.class, () -> SimdGemm.matmulTN(big, big, big, -1, 4, 4, false));
            assertThrows(IllegalArgumentException.class, () -> SimdGemm.matmulTN(big, big, big, 4, 4, 4, false, 0));
        }
    }

    /** A long K sums 8192 products: the error must stay at float-rounding level, not grow with K. */
    @Test
    void longReductionStaysAccurate() {
        try (Arena arena = Arena.ofShared()) {
            for (Kind kind : Kind.values()) {
                Problem p = new Problem(arena, kind, 13, 40, 8192, 11, 1);
                p.assertClose(p.run(false, 2, POOLS[1]), p.doubleReference(false), "double reference");
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Fixture
    // ---------------------------------------------------------------------------------------

    /** Random operands of one matmul, laid out for its kind, plus the initial output. */
    private static final class Problem {
        final Kind kind;
        final int M, N, K;
        final MemorySegment a, b, init;
        final Arena arena;
        final int misalign;

        Problem(Arena arena, Kind kind, int M, int N, int K, long seed, int misalign) {
            this.arena = arena;
            this.kind = kind;
            this.M = M;
            this.N = N;
            this.K = K;
            this.misalign = misalign;
            Random rnd = new Random(seed);
            a = random(arena, (long) M * K, rnd, misalign);
            b = random(arena, (long) K * N, rnd, misalign + 1);
            init = random(arena, (long) M * N, rnd, 0);
        }

        private Problem(Problem p, Arena arena, int byteOffset) {
            this.arena = arena;
            this.kind = p.kind;
            this.M = p.M;
            this.N = p.N;
            this.K = p.K;
            this.misalign = byteOffset;
            a = copyAt(arena, p.a, byteOffset);
            b = copyAt(arena, p.b, byteOffset);
            init = p.init;
        }

        Problem copyAtByteOffset(Arena arena, int byteOffset) {
            return new Problem(this, arena, byteOffset);
        }

        /** A fresh output (a slice at a float offset), run through SimdGemm inside {@code pool}. */
        MemorySegment run(boolean accumulate, int threads, ForkJoinPool pool) {
            MemorySegment out = copyAt(arena, init, 4 * misalign);
            try {
                pool.submit(() -> call(out, accumulate, threads)).get();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
            return out;
        }

        MemorySegment runDefaultThreads(boolean accumulate, ForkJoinPool pool) {
            MemorySegment out = copyAt(arena, init, 0);
            try {
                pool.submit(() -> {
                    switch (kind) {
                        case NT -> SimdGemm.matmulNT(a, b, out, M, N, K, accumulate);
                        case NN -> SimdGemm.matmulNN(a, b, out, M, N, K, accumulate);
                        case TN -> SimdGemm.matmulTN(a, b, out, K, M, N, accumulate);
                    }
                }).get();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
            return out;
        }

        private void call(MemorySegment out, boolean accumulate, int threads) {
            switch (kind) {
                case NT -> SimdGemm.matmulNT(a, b, out, M, N, K, accumulate, threads);
                case NN -> SimdGemm.matmulNN(a, b, out, M, N, K, accumulate, threads);
                case TN -> SimdGemm.matmulTN(a, b, out, K, M, N, accumulate, threads);
            }
        }

        MemorySegment scalarReference(boolean accumulate) {
            MemorySegment out = copyAt(arena, init, 0);
            switch (kind) {
                case NT -> CpuKernels.matmulNT(a, b, out, M, N, K, accumulate);
                case NN -> CpuKernels.matmulNN(a, b, out, M, N, K, accumulate);
                case TN -> CpuKernels.matmulTN(a, b, out, K, M, N, accumulate);
            }
            return out;
        }

        float aAt(int i, int k) {
            return a.getAtIndex(F32, kind == Kind.TN ? (long) k * M + i : (long) i * K + k);
        }

        float bAt(int k, int j) {
            return b.getAtIndex(F32, kind == Kind.NT ? (long) j * K + k : (long) k * N + j);
        }

        /** {out, magnitude} in double: the exact product (plus init) and sum of |terms| per element. */
        double[][] doubleReference(boolean accumulate) {
            double[] ref = new double[M * N];
            double[] mag = new double[M * N];
            double[] bt = new double[K * N];
            for (int k = 0; k < K; k++) {
                for (int j = 0; j < N; j++) {
                    bt[j * K + k] = bAt(k, j);
                }
            }
            double[] ai = new double[K];
            for (int i = 0; i < M; i++) {
                for (int k = 0; k < K; k++) {
                    ai[k] = aAt(i, k);
                }
                for (int j = 0; j < N; j++) {
                    double s = accumulate ? init.getAtIndex(F32, (long) i * N + j) : 0;
                    double m = Math.abs(s);
                    for (int k = 0; k < K; k++) {
                        double t = ai[k] * bt[j * K + k];
                        s += t;
                        m += Math.abs(t);
                    }
                    ref[i * N + j] = s;
                    mag[i * N + j] = m;
                }
            }
            return new double[][] {ref, mag};
        }

        void assertClose(MemorySegment got, MemorySegment want, boolean accumulate, String what) {
            double[][] exact = doubleReference(accumulate);
            double[] w = new double[M * N];
            for (int i = 0; i < M * N; i++) {
                w[i] = want.getAtIndex(F32, i);
            }
            // The scalar reference is itself float: compare with twice the bound.
            assertClose(got, new double[][] {w, exact[1]}, what, 2);
        }

        void assertClose(MemorySegment got, double[][] want, String what) {
            assertClose(got, want, what, 1);
        }

        /**
         * |got - want| <= 1e-5 * sqrt(K) * the row's magnitude (its largest sum of |terms|,
         * including the accumulated initial value), the float-accumulation bound asked of the kernel.
         */
        private void assertClose(MemorySegment got, double[][] want, String what, double slack) {
            for (int i = 0; i < M; i++) {
                double rowMag = 0;
                for (int j = 0; j < N; j++) {
                    rowMag = Math.max(rowMag, want[1][i * N + j]);
                }
                double tol = slack * 1e-5 * Math.sqrt(K) * rowMag;
                for (int j = 0; j < N; j++) {
                    double g = got.getAtIndex(F32, (long) i * N + j);
                    double err = Math.abs(g - want[0][i * N + j]);
                    int ii = i, jj = j;
                    assertTrue(err <= tol, () -> String.format("%s %dx%dx%d vs %s at (%d,%d): got %s want %s (err %.3g > tol %.3g)",
                            kind, M, N, K, what, ii, jj, g, want[0][ii * N + jj], err, tol));
                }
            }
        }

        /** {@code n} random floats in [-1, 1) starting {@code floatOffset} floats into a larger segment. */
        private static MemorySegment random(Arena arena, long n, Random rnd, int floatOffset) {
            MemorySegment s = arena.allocate(4 * (n + floatOffset + 1), 64).asSlice(4L * floatOffset, 4 * n);
            for (long i = 0; i < n; i++) {
                s.setAtIndex(F32, i, rnd.nextFloat() * 2 - 1);
            }
            return s;
        }

        private static MemorySegment copyAt(Arena arena, MemorySegment src, int byteOffset) {
            MemorySegment s = arena.allocate(src.byteSize() + byteOffset + 4, 64).asSlice(byteOffset, src.byteSize());
            s.copyFrom(src);
            return s;
        }
    }
}
