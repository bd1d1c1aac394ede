package dev.collie.runtime.kernels;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's float32 multiply-add ceiling as the Vector API reaches it: twelve independent FMA
 * chains in registers per thread, no memory traffic, on every thread of the pool at once. No matrix
 * product can beat it, so a kernel's rate over it is its efficiency, and a step's model FLOPs over
 * it say how far the hardware itself is from the result (what {@code collie bench} reports as
 * {@code fma_peak_gflops} beside the GEMM rate).
 */
public final class FmaPeak {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Independent accumulators: enough to cover FMA latency x pipes (4 x 2 on current x86). */
    private static final int CHAINS = 12;

    private FmaPeak() {}

    /** FLOP/s of all the current pool's threads running FMA chains together, best of {@code trials}. */
    public static double measure(int trials) {
        int threads = SimdGemm.defaultThreads();
        long iterations = 4_000_000;
        double best = 0;
        for (int t = 0; t < trials; t++) {
            List<ForkJoinTask<Float>> jobs = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                jobs.add(ForkJoinTask.adapt(() -> chains(iterations)));
            }
            long start = System.nanoTime();
            ForkJoinTask.invokeAll(jobs);
            double seconds = (System.nanoTime() - start) / 1e9;
            float sink = 0;
            for (ForkJoinTask<Float> j : jobs) {
                sink += j.join();
            }
            if (Float.isNaN(sink)) {
                throw new AssertionError("unreachable: keeps the chains alive");
            }
            best = Math.max(best, threads * iterations * CHAINS * 2.0 * S.length() / seconds);
        }
        return best;
    }

    /** {@link #measure} on a pool of its own with {@code threads} workers. */
    public static double measure(int trials, int threads) {
        ForkJoinPool pool = new ForkJoinPool(threads);
        try {
            return pool.submit(() -> measure(trials)).join();
        } finally {
            pool.shutdown();
        }
    }

    /**
     * Twelve FMA chains through the addend ({@code c = m*a + c}, a GEMM's accumulation) in an
     * int-counted loop. The probe's first form, chains through the multiplicand ({@code c = c*m + a})
     * in a long-counted loop, read 134-159 GFLOP/s on the 2-core development machine in minutes where
     * this form read 181-197 and the GEMM's micro-kernel alone, on operands in cache, 155-178: a
     * ceiling below what a kernel reaches is no ceiling. (Unrolling this loop twice read the same.)
     */
    private static float chains(long iterations) {
        FloatVector m = FloatVector.broadcast(S, 1e-7f);
        FloatVector a = FloatVector.broadcast(S, 1e-7f);
        FloatVector c0 = FloatVector.broadcast(S, 0.1f), c1 = c0.add(a), c2 = c1.add(a), c3 = c2.add(a);
        FloatVector c4 = c3.add(a), c5 = c4.add(a), c6 = c5.add(a), c7 = c6.add(a);
        FloatVector c8 = c7.add(a), c9 = c8.add(a), c10 = c9.add(a), c11 = c10.add(a);
        int n = Math.toIntExact(iterations);
        for (int i = 0; i < n; i++) {
            c0 = m.fma(a, c0);
            c1 = m.fma(a, c1);
            c2 = m.fma(a, c2);
            c3 = m.fma(a, c3);
            c4 = m.fma(a, c4);
            c5 = m.fma(a, c5);
            c6 = m.fma(a, c6);
            c7 = m.fma(a, c7);
            c8 = m.fma(a, c8);
            c9 = m.fma(a, c9);
            c10 = m.fma(a, c10);
            c11 = m.fma(a, c11);
        }
        return c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11)
                .lane(0);
    }
}
