package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.ForkJoinPool;

/**
 * Causal attention forward and backward of every layer of one training step alone, timed per step
 * and printed as one JSON line in the form {@code tools/interleave_bench.py} reads, to compare
 * {@link FlashAttention} time-sliced against another implementation (PyTorch's
 * scaled_dot_product_attention) on the same machine.
 *
 * <p>Usage: {@code java --add-modules jdk.incubator.vector -cp runtime/target/classes:runtime/target/test-classes
 * dev.collie.runtime.kernels.StepAttentionBench [steps] [B H KV T D layers]} (default: 110m, batch 4 x 256).
 */
public final class StepAttentionBench {

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        int[] s = args.length > 6 ? Arrays.stream(args, 1, 7).mapToInt(Integer::parseInt).toArray()
                : new int[] {4, 12, 12, 256, 64, 12};
        int B = s[0], H = s[1], KV = s[2], T = s[3], D = s[4], L = s[5];
        ForkJoinPool pool = new ForkJoinPool(Runtime.getRuntime().availableProcessors());
        try (Arena arena = Arena.ofShared()) {
            Random rnd = new Random(0);
            long qn = (long) B * H * T * D;
            long kn = (long) B * KV * T * D;
            MemorySegment q = StepTimer.random(arena, qn, rnd), k = StepTimer.random(arena, kn, rnd), v = StepTimer.random(arena, kn, rnd);
            MemorySegment dO = StepTimer.random(arena, qn, rnd);
            MemorySegment o = arena.allocate(qn * 4, 64), dq = arena.allocate(qn * 4, 64);
            MemorySegment dk = arena.allocate(kn * 4, 64), dv = arena.allocate(kn * 4, 64);
            MemorySegment lse = arena.allocate((long) B * H * T * 4, 64);
            float scale = (float) (1 / Math.sqrt(D));
            Runnable step = () -> {
                for (int l = 0; l < L; l++) {
                    FlashAttention.forward(q, k, v, o, B, H, KV, T, D, true, scale, null, lse);
                    FlashAttention.backward(q, k, v, o, dO, dq, dk, dv, B, H, KV, T, D, true, scale, null, lse);
                }
            };
            double[] times = StepTimer.time(pool, step, steps);
            double median = StepTimer.median(times);
            System.out.printf("{\"impl\": \"collie-flash\", \"tokens_per_step\": %d, \"step_s_median\": %.5f, \"steps\": %s}%n",
                    B * T, median, Arrays.toString(times));
        }
        pool.shutdown();
    }

}
