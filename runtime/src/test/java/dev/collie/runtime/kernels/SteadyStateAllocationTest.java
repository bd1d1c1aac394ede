package dev.collie.runtime.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Once compiled, the kernels make no garbage of their own. A vector passed to a helper that C2 does not
 * inline is boxed on every call (a Float256Vector and its float[] payload): the attention's tile kernels
 * did that, about 60 MB of garbage per 15m training step, until they spelled their output update out.
 * Each kernel here runs until C2 has compiled it (at most a minute), then the bytes allocated per call,
 * by all threads, must stay far below what boxing made: a regression brings back hundreds of KB.
 */
class SteadyStateAllocationTest {

    /** Bytes per call above which a kernel is taken to box vectors in compiled code. */
    private static final long LIMIT = 64 * 1024;

    /**
     * Runs {@code step} until the bytes all threads allocate per call fall to {@code limit} or a minute has
     * passed (the interpreter and C1 box every vector; only C2's code is judged), then checks them.
     */
    private static void assertSteadyStateAllocationBelow(String what, Runnable step, long limit) {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long perCall = Long.MAX_VALUE;
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (perCall > limit && System.nanoTime() < deadline) {
            for (int i = 0; i < 50; i++) {
                step.run();
            }
            long before = threads.getTotalThreadAllocatedBytes();
            for (int i = 0; i < 20; i++) {
                step.run();
            }
            perCall = (threads.getTotalThreadAllocatedBytes() - before) / 20;
        }
        assertTrue(perCall <= limit, what + " allocate " + perCall + " bytes per call");
    }

    private static MemorySegment random(Arena arena, long n, long seed) {
        MemorySegment m = arena.allocate(n * Float.BYTES, 64);
        SplittableRandom rng = new SplittableRandom(seed);
        for (long j = 0; j < n; j++) {
            m.setAtIndex(ValueLayout.JAVA_FLOAT, j, (float) rng.nextDouble(-1, 1));
        }
        return m;
    }

    @Test
    void gemmInEveryLayoutAllocatesAlmostNothingOnceCompiled() {
        int M = 200, N = 136, K = 300;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment a = random(arena, (long) M * K, 1), b = random(arena, (long) N * K, 2);
            MemorySegment c = arena.allocate((long) M * N * Float.BYTES, 64);
            assertSteadyStateAllocationBelow("NT, NN and TN products", () -> {
                SimdGemm.matmulNT(a, b, c, M, N, K, false);
                SimdGemm.matmulNN(a, b, c, M, N, K, false);
                SimdGemm.matmulTN(a, b, c, K, M, N, true);
            }, LIMIT);
        }
    }

    @Test
    void fusedElementwiseKernelsAllocateAlmostNothingOnceCompiled() {
        int rows = 64, C = 288;
        long n = (long) rows * C;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment x = random(arena, n, 3), y = random(arena, n, 4), dy = random(arena, n, 5);
            MemorySegment w = random(arena, C, 6), out = arena.allocate(n * Float.BYTES, 64);
            MemorySegment dx = arena.allocate(n * Float.BYTES, 64), dx2 = arena.allocate(n * Float.BYTES, 64);
            MemorySegment dw = arena.allocate((long) C * Float.BYTES, 64);
            assertSteadyStateAllocationBelow("SwiGLU and RMSNorm forward + backward", () -> {
                VectorOps.swigluForward(x, y, out, n);
                VectorOps.swigluBackward(x, y, dy, dx, dx2, n);
                FusedNorms.rmsNormForward(x, w, out, rows, C, 1e-5f);
                FusedNorms.rmsNormBackward(x, w, dy, dx, dw, rows, C, 1e-5f);
            }, LIMIT);
        }
    }

    @Test
    void attentionForwardAndBackwardAllocateAlmostNothingOnceCompiled() {
        int B = 1, H = 2, T = 256, D = 48;
        long n = (long) B * T * H * D;
        try (Arena arena = Arena.ofShared()) {
            SplittableRandom rng = new SplittableRandom(7);
            MemorySegment[] t = new MemorySegment[8];
            for (int i = 0; i < t.length; i++) {
                t[i] = arena.allocate(n * Float.BYTES, 64);
                for (long j = 0; j < n; j++) {
                    t[i].setAtIndex(ValueLayout.JAVA_FLOAT, j, (float) rng.nextDouble(-1, 1));
                }
            }
            MemorySegment lse = arena.allocate((long) B * H * T * Float.BYTES, 64);
            FlashAttention.Rotary rotary = new FlashAttention.Rotary(10000.0, null);
            float scale = (float) (1 / Math.sqrt(D));
            Runnable step = () -> {
                FlashAttention.forwardTokenMajor(t[0], t[1], t[2], t[3], B, H, H, T, D, true, scale, null, lse, rotary);
                FlashAttention.backwardTokenMajor(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], B, H, H, T, D, true,
                        scale, null, lse, rotary);
            };
            // At this shape the boxing kernels made 430 KB per call once compiled; these make under
            // 1 KB (the tasks of the parallel loop).
            assertSteadyStateAllocationBelow("attention forward + backward", step, LIMIT);
        }
    }
}
