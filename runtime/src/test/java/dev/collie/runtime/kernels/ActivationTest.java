package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

class ActivationTest {

    @Provide
    Arbitrary<Integer> sizes() {
        return Arbitraries.of(1, 2, 3, 7, 8, 16, 17, 31, 33, 65);
    }

    @Provide
    Arbitrary<Integer> smallRows() {
        return Arbitraries.of(1, 2, 3, 5);
    }

    /** Forward/backward pair under test, with a double reference of the forward. */
    enum Fn {
        SILU(x -> x / (1 + Math.exp(-x))),
        GELU_TANH(x -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))),
        TANH(Math::tanh);

        final DoubleUnaryOperator reference;

        Fn(DoubleUnaryOperator reference) {
            this.reference = reference;
        }

        void forward(MemorySegment x, MemorySegment out, long n) {
            switch (this) {
                case SILU -> CpuKernels.siluForward(x, out, n);
                case GELU_TANH -> CpuKernels.geluTanhForward(x, out, n);
                case TANH -> CpuKernels.tanhForward(x, out, n);
            }
        }

        /** tanh's backward reads the forward output; the others read the input. */
        void backward(MemorySegment x, MemorySegment y, MemorySegment dy, MemorySegment dx, long n) {
            switch (this) {
                case SILU -> CpuKernels.siluBackward(x, dy, dx, n);
                case GELU_TANH -> CpuKernels.geluTanhBackward(x, dy, dx, n);
                case TANH -> CpuKernels.tanhBackward(y, dy, dx, n);
            }
        }

        double[] apply(double[] x) {
            double[] out = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                out[i] = reference.applyAsDouble(x[i]);
            }
            return out;
        }
    }

    @Property(tries = 60)
    void forwardMatchesReference(@ForAll Fn fn, @ForAll("sizes") int n, @ForAll long seed) {
        float[] x = uniform(new Random(seed), n, -6, 6);
        MemorySegment out = zeros(n);
        fn.forward(segment(x), out, n);
        assertClose(fn.apply(doubles(x)), floats(out, n), 1e-5, 1e-6, fn.name());
    }

    @Property(tries = 60)
    void backwardMatchesFiniteDifferences(@ForAll Fn fn, @ForAll("sizes") int n, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] x = uniform(rnd, n, -6, 6);
        float[] dy = uniform(rnd, n, -1, 1);
        MemorySegment xs = segment(x);
        MemorySegment y = zeros(n);
        MemorySegment dx = zeros(n);
        fn.forward(xs, y, n);
        fn.backward(xs, y, segment(dy), dx, n);
        double[] g = doubles(dy);
        double[] expected = numericGradient(doubles(x), xv -> dot(g, fn.apply(xv)));
        assertClose(expected, floats(dx, n), 1e-5, 1e-6, fn.name() + " dx");
    }

    @Property(tries = 40)
    void reluForwardAndBackward(@ForAll("sizes") int n, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] x = uniform(rnd, n, -3, 3);
        x[0] = 0f;
        float[] dy = uniform(rnd, n, -1, 1);
        MemorySegment out = zeros(n);
        MemorySegment dx = zeros(n);
        CpuKernels.reluForward(segment(x), out, n);
        CpuKernels.reluBackward(segment(x), segment(dy), dx, n);
        float[] y = floats(out, n);
        float[] g = floats(dx, n);
        for (int i = 0; i < n; i++) {
            assertEquals(x[i] > 0 ? x[i] : 0f, y[i], "relu[" + i + "]");
            assertEquals(x[i] > 0 ? dy[i] : 0f, g[i], "drelu[" + i + "]");
        }
    }

    @Test
    void reluKeepsNaN() {
        MemorySegment out = zeros(1);
        CpuKernels.reluForward(segment(new float[] {Float.NaN}), out, 1);
        assertTrue(Float.isNaN(floats(out, 1)[0]));
    }

    static double[] softmax(double[] x, int rows, int C) {
        double[] out = new double[rows * C];
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < C; c++) {
                max = Math.max(max, x[r * C + c]);
            }
            double sum = 0;
            for (int c = 0; c < C; c++) {
                sum += Math.exp(x[r * C + c] - max);
            }
            for (int c = 0; c < C; c++) {
                out[r * C + c] = Math.exp(x[r * C + c] - max) / sum;
            }
        }
        return out;
    }

    @Property(tries = 60)
    void softmaxForwardMatchesReference(@ForAll("sizes") int rows, @ForAll("sizes") int C, @ForAll long seed) {
        Random rnd = new Random(seed);
        // A per-row offset of up to ±1000 overflows exp unless the maximum is subtracted.
        float[] x = uniform(rnd, rows * C, -5, 5);
        for (int r = 0; r < rows; r++) {
            float offset = (float) (1000 * (2 * rnd.nextDouble() - 1));
            for (int c = 0; c < C; c++) {
                x[r * C + c] += offset;
            }
        }
        MemorySegment out = zeros(rows * C);
        CpuKernels.softmaxForward(segment(x), out, rows, C);
        // Inputs near ±1000 are themselves rounded to ~6e-5, so compare against those rounded inputs.
        assertClose(softmax(doubles(x), rows, C), floats(out, rows * C), 1e-5, 1e-7, "softmax");
    }

    @Property(tries = 40)
    void softmaxBackwardMatchesFiniteDifferences(@ForAll("smallRows") int rows, @ForAll("sizes") int C,
                                                 @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] x = uniform(rnd, rows * C, -3, 3);
        float[] dy = uniform(rnd, rows * C, -1, 1);
        MemorySegment y = zeros(rows * C);
        MemorySegment dx = zeros(rows * C);
        CpuKernels.softmaxForward(segment(x), y, rows, C);
        CpuKernels.softmaxBackward(y, segment(dy), dx, rows, C);
        double[] g = doubles(dy);
        double[] expected = numericGradient(doubles(x), xv -> dot(g, softmax(xv, rows, C)));
        assertClose(expected, floats(dx, rows * C), 1e-5, 1e-6, "softmax dx");
    }
}
