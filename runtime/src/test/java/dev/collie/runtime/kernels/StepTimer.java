package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.ForkJoinPool;

/** What the step benchmarks share: random operands, and timing a step on a pool as the runtime runs it. */
final class StepTimer {

    private StepTimer() {
    }

    /** Seconds of each of {@code steps} timed runs of {@code step} on {@code pool}, after one untimed run. */
    static double[] time(ForkJoinPool pool, Runnable step, int steps) {
        pool.submit(step).join();
        double[] times = new double[steps];
        for (int s = 0; s < steps; s++) {
            long t0 = System.nanoTime();
            pool.submit(step).join();
            times[s] = (System.nanoTime() - t0) * 1e-9;
        }
        return times;
    }

    /** The median (the mean of the middle two for an even count, as Python's statistics.median). */
    static double median(double[] times) {
        double[] sorted = times.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /** {@code n} standard normal floats, 64-byte aligned. */
    static MemorySegment random(Arena arena, long n, Random rnd) {
        MemorySegment s = arena.allocate(n * Float.BYTES, 64);
        for (long i = 0; i < n; i++) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rnd.nextGaussian());
        }
        return s;
    }
}
