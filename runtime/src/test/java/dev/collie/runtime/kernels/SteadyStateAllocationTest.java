package dev.collie.runtime.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Once compiled, the attention kernels make no garbage of their own: a vector passed to a helper that
 * C2 does not inline is boxed on every call (a Float256Vector and its float[] payload), which made
 * about 60 MB of garbage per 15m training step until the tile kernels spelled their output update out.
 * The kernels are run until C2 has compiled them (at most a minute), then the bytes allocated per
 * call, by all threads, must stay far below what boxing made: a regression brings back megabytes.
 */
class SteadyStateAllocationTest {

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
            var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
            Runnable step = () -> {
                FlashAttention.forwardTokenMajor(t[0], t[1], t[2], t[3], B, H, H, T, D, true, scale, null, lse, rotary);
                FlashAttention.backwardTokenMajor(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], B, H, H, T, D, true,
                        scale, null, lse, rotary);
            };
            // At this shape the boxing kernels made 430 KB per call once compiled; these make under
            // 1 KB (the tasks of the parallel loop).
            long limit = 64 * 1024;
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
            assertTrue(perCall <= limit, "attention forward + backward allocate " + perCall + " bytes per call");
        }
    }
}
