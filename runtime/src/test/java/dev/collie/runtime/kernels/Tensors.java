package dev.collie.runtime.kernels;

import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.function.ToDoubleFunction;

/** Segment plumbing, random data, tolerant comparison and finite differences shared by the tests. */
final class Tensors {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;

    /** Step for central differences of the double references: truncation and rounding both stay near 1e-10. */
    private static final double FD_STEP = 1e-5;

    private Tensors() {
    }

    static MemorySegment segment(float[] values) {
        MemorySegment s = Arena.ofAuto().allocate((long) Math.max(1, values.length) * Float.BYTES);
        for (int i = 0; i < values.length; i++) {
            s.setAtIndex(F32, i, values[i]);
        }
        return s;
    }

    static MemorySegment zeros(int n) {
        return segment(new float[n]);
    }

    static MemorySegment ids(long[] values) {
        MemorySegment s = Arena.ofAuto().allocate((long) Math.max(1, values.length) * Long.BYTES);
        for (int i = 0; i < values.length; i++) {
            s.setAtIndex(I64, i, values[i]);
        }
        return s;
    }

    static float[] floats(MemorySegment s, int n) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.getAtIndex(F32, i);
        }
        return out;
    }

    static double[] doubles(float[] values) {
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }

    static float[] uniform(Random rnd, int n, double lo, double hi) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return out;
    }

    static double dot(double[] a, double[] b) {
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            sum += a[i] * b[i];
        }
        return sum;
    }

    /** Asserts {@code |actual - expected| <= atol + rtol * |expected|} element by element. */
    static void assertClose(double[] expected, float[] actual, double rtol, double atol, String what) {
        double[] scale = new double[expected.length];
        for (int i = 0; i < expected.length; i++) {
            scale[i] = Math.abs(expected[i]);
        }
        assertCloseScaled(expected, scale, actual, rtol, atol, what);
    }

    /**
     * Asserts {@code |actual - expected| <= atol + rtol * scale} element by element, where the
     * scale is the magnitude float rounding is proportional to (for a sum, the sum of |terms|).
     */
    static void assertCloseScaled(double[] expected, double[] scale, float[] actual, double rtol, double atol,
                                  String what) {
        if (expected.length != actual.length) {
            fail(what + ": length " + actual.length + ", expected " + expected.length);
        }
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            if (!(err <= atol + rtol * scale[i])) {
                fail(what + "[" + i + "]: got " + actual[i] + ", expected " + expected[i]
                        + " (error " + err + ", allowed " + (atol + rtol * scale[i]) + ")");
            }
        }
    }

    /** Central-difference gradient of a double-precision scalar function at {@code x}. */
    static double[] numericGradient(double[] x, ToDoubleFunction<double[]> f) {
        double[] probe = x.clone();
        double[] grad = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            probe[i] = x[i] + FD_STEP;
            double up = f.applyAsDouble(probe);
            probe[i] = x[i] - FD_STEP;
            double down = f.applyAsDouble(probe);
            probe[i] = x[i];
            grad[i] = (up - down) / (2 * FD_STEP);
        }
        return grad;
    }

    /** Runs {@code body} on a worker of a fresh pool, so kernels' parallel streams use that pool's threads. */
    static void inPool(int parallelism, Runnable body) {
        ForkJoinPool pool = new ForkJoinPool(parallelism);
        try {
            pool.submit(body).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        } catch (ExecutionException e) {
            throw new AssertionError(e.getCause());
        } finally {
            pool.shutdown();
        }
    }
}
