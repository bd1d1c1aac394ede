package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;

/**
 * The matrix products of one LLaMA training step alone (no attention, norms or updates), timed
 * per step: the forward {@code x · W^T}, backward {@code dY · W} and weight gradient
 * {@code dY^T · X} of every projection, and the head's three. Printed as one JSON line in the
 * form {@code tools/interleave_bench.py} reads, to compare the products against another GEMM
 * (tools/torch_step_gemm.py) time-sliced on the same machine.
 *
 * <p>Usage: {@code java --add-modules jdk.incubator.vector -cp runtime/target/classes:runtime/target/test-classes
 * dev.collie.runtime.kernels.StepGemmBench [steps] [tokens dim hidden vocab layers]} (default: 110m, 1024 tokens).
 */
public final class StepGemmBench {

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 4;
        int T = args.length > 5 ? Integer.parseInt(args[1]) : 1024;
        int d = args.length > 5 ? Integer.parseInt(args[2]) : 768;
        int h = args.length > 5 ? Integer.parseInt(args[3]) : 2048;
        int V = args.length > 5 ? Integer.parseInt(args[4]) : 32000;
        int L = args.length > 5 ? Integer.parseInt(args[5]) : 12;
        int threads = Runtime.getRuntime().availableProcessors();
        java.util.concurrent.ForkJoinPool pool = new java.util.concurrent.ForkJoinPool(threads);
        try (Arena arena = Arena.ofShared()) {
            Random rnd = new Random(0);
            MemorySegment xd = StepTimer.random(arena, (long) T * d, rnd), xh = StepTimer.random(arena, (long) T * h, rnd);
            MemorySegment dyd = StepTimer.random(arena, (long) T * d, rnd), dyh = StepTimer.random(arena, (long) T * h, rnd);
            MemorySegment dyv = StepTimer.random(arena, (long) T * V, rnd);
            MemorySegment wdd = StepTimer.random(arena, (long) d * d, rnd), whd = StepTimer.random(arena, (long) h * d, rnd);
            MemorySegment wdh = StepTimer.random(arena, (long) d * h, rnd), wvd = StepTimer.random(arena, (long) V * d, rnd);
            long outFloats = Math.max(Math.max((long) T * V, (long) V * d), Math.max((long) T * h, (long) h * d));
            MemorySegment out = arena.allocate(outFloats * 4, 64);
            Runnable step = () -> {
                for (int l = 0; l < L; l++) {
                    for (int i = 0; i < 4; i++) {
                        SimdGemm.matmulNT(xd, wdd, out, T, d, d, false, threads);
                        SimdGemm.matmulNN(dyd, wdd, out, T, d, d, false, threads);
                        SimdGemm.matmulTN(dyd, xd, out, T, d, d, false, threads);
                    }
                    for (int i = 0; i < 2; i++) {
                        SimdGemm.matmulNT(xd, whd, out, T, h, d, false, threads);
                        SimdGemm.matmulNN(dyh, whd, out, T, d, h, false, threads);
                        SimdGemm.matmulTN(dyh, xd, out, T, h, d, false, threads);
                    }
                    SimdGemm.matmulNT(xh, wdh, out, T, d, h, false, threads);
                    SimdGemm.matmulNN(dyd, wdh, out, T, h, d, false, threads);
                    SimdGemm.matmulTN(dyd, xh, out, T, d, h, false, threads);
                }
                SimdGemm.matmulNT(xd, wvd, out, T, V, d, false, threads);
                SimdGemm.matmulNN(dyv, wvd, out, T, d, V, false, threads);
                SimdGemm.matmulTN(dyv, xd, out, T, V, d, false, threads);
            };
            double[] times = StepTimer.time(pool, step, steps);
            double median = StepTimer.median(times);
            double flop = 6.0 * T * ((double) L * (4L * d * d + 3L * d * h) + (double) V * d);
            System.out.printf("{\"impl\": \"collie\", \"tokens_per_step\": %d, \"step_s_median\": %.5f, \"gflops\": %.2f, \"steps\": %s}%n",
                    T, median, flop / median / 1e9, Arrays.toString(times));
            pool.shutdown();
        }
    }

}
