package dev.collie.runtime.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The FMA probe gives a finite, positive rate on every thread count (its figure is a benchmark's, not a test's). */
class FmaPeakTest {

    @Test
    void measuresAFiniteRateOnOneAndTwoThreads() {
        for (int threads : new int[] {1, 2}) {
            double flops = FmaPeak.measure(2, threads);
            // any CPU that runs the tests does far more than 0.1 GFLOP/s; NaN, zero or a broken count fails
            assertTrue(Double.isFinite(flops) && flops > 1e8, threads + " threads: " + flops);
        }
    }
}
