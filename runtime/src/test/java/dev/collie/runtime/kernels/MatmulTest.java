package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

class MatmulTest {

    private static final double RTOL = 1e-5;

    @Provide
    Arbitrary<Integer> sizes() {
        // Odd sizes and sizes around 8/16/32/64 catch tail-loop and blocking bugs; 65^3 crosses the
        // parallel threshold.
        return Arbitraries.of(1, 2, 3, 7, 8, 9, 16, 17, 31, 33, 65);
    }

    /** Matrix element accessor for the reference: {@code trans} reads a stored [cols, rows] matrix transposed. */
    private static double at(float[] m, int rows, int cols, boolean trans, int r, int c) {
        return trans ? m[c * rows + r] : m[r * cols + c];
    }

    /**
     * Double reference of {@code prior + op(a)[M,K] · op(b)[K,N]}, checked with a tolerance scaled
     * by {@code sum |terms|}, the quantity float accumulation error is proportional to.
     */
    private static void check(float[] a, boolean transA, float[] b, boolean transB, float[] prior,
                              float[] actual, int M, int N, int K, String what) {
        double[] expected = new double[M * N];
        double[] scale = new double[M * N];
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                double sum = prior == null ? 0 : prior[i * N + j];
                double mag = Math.abs(sum);
                for (int k = 0; k < K; k++) {
                    double term = at(a, M, K, transA, i, k) * at(b, K, N, transB, k, j);
                    sum += term;
                    mag += Math.abs(term);
                }
                expected[i * N + j] = sum;
                scale[i * N + j] = mag;
            }
        }
        assertCloseScaled(expected, scale, actual, RTOL, 0, what);
    }

    @Property(tries = 60)
    void matmulNTMatchesReference(@ForAll("sizes") int M, @ForAll("sizes") int N, @ForAll("sizes") int K,
                                  @ForAll boolean accumulate, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] a = uniform(rnd, M * K, -1, 1);
        float[] b = uniform(rnd, N * K, -1, 1);
        float[] prior = uniform(rnd, M * N, -1, 1);
        MemorySegment out = segment(prior);
        CpuKernels.matmulNT(segment(a), segment(b), out, M, N, K, accumulate);
        check(a, false, b, true, accumulate ? prior : null, floats(out, M * N), M, N, K, "matmulNT");
    }

    @Property(tries = 60)
    void matmulNNMatchesReference(@ForAll("sizes") int M, @ForAll("sizes") int N, @ForAll("sizes") int K,
                                  @ForAll boolean accumulate, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] a = uniform(rnd, M * K, -1, 1);
        float[] b = uniform(rnd, K * N, -1, 1);
        float[] prior = uniform(rnd, M * N, -1, 1);
        MemorySegment out = segment(prior);
        CpuKernels.matmulNN(segment(a), segment(b), out, M, N, K, accumulate);
        check(a, false, b, false, accumulate ? prior : null, floats(out, M * N), M, N, K, "matmulNN");
    }

    @Property(tries = 60)
    void matmulTNMatchesReference(@ForAll("sizes") int R, @ForAll("sizes") int M, @ForAll("sizes") int N,
                                  @ForAll boolean accumulate, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] a = uniform(rnd, R * M, -1, 1);
        float[] b = uniform(rnd, R * N, -1, 1);
        float[] prior = uniform(rnd, M * N, -1, 1);
        MemorySegment out = segment(prior);
        CpuKernels.matmulTN(segment(a), segment(b), out, R, M, N, accumulate);
        check(a, true, b, false, accumulate ? prior : null, floats(out, M * N), M, N, R, "matmulTN");
    }

    @Test
    void matmulsAreBitIdenticalForAnyThreadCount() {
        // Large enough (M*N*K ≈ 2^19) to take the parallel path; the products are checked against
        // the reference once, then bit for bit on the caller's thread, in a one-thread pool and in
        // wider pools.
        int M = 67;
        int N = 129;
        int K = 65;
        Random rnd = new Random(7);
        MemorySegment a = segment(uniform(rnd, M * K, -1, 1));
        MemorySegment bNT = segment(uniform(rnd, N * K, -1, 1));
        MemorySegment bNN = segment(uniform(rnd, K * N, -1, 1));
        MemorySegment aTN = segment(uniform(rnd, K * M, -1, 1));
        float[] prior = uniform(rnd, M * N, -1, 1);

        float[][] reference = null;
        for (int threads : new int[] {0, 1, 3, 16}) {
            MemorySegment nt = segment(prior);
            MemorySegment nn = segment(prior);
            MemorySegment tn = segment(prior);
            Runnable run = () -> {
                CpuKernels.matmulNT(a, bNT, nt, M, N, K, true);
                CpuKernels.matmulNN(a, bNN, nn, M, N, K, false);
                CpuKernels.matmulTN(aTN, bNN, tn, K, M, N, true);
            };
            if (threads == 0) {
                run.run();
            } else {
                inPool(threads, run);
            }
            float[][] results = {floats(nt, M * N), floats(nn, M * N), floats(tn, M * N)};
            if (reference == null) {
                check(floats(a, M * K), false, floats(bNT, N * K), true, prior, results[0], M, N, K, "matmulNT");
                check(floats(a, M * K), false, floats(bNN, K * N), false, null, results[1], M, N, K, "matmulNN");
                check(floats(aTN, K * M), true, floats(bNN, K * N), false, prior, results[2], M, N, K, "matmulTN");
                reference = results;
            } else {
                for (int r = 0; r < results.length; r++) {
                    assertArrayEquals(reference[r], results[r], "kernel " + r + " with " + threads + " threads");
                }
            }
        }
    }
}
