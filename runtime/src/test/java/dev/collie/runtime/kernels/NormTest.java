package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.*;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

class NormTest {

    private static final float EPS = 1e-5f;

    @Provide
    Arbitrary<Integer> sizes() {
        return Arbitraries.of(1, 2, 3, 7, 8, 16, 17, 31, 33, 65);
    }

    @Provide
    Arbitrary<Integer> smallRows() {
        return Arbitraries.of(1, 2, 3, 5);
    }

    static double[] rmsNorm(double[] x, double[] w, int rows, int C) {
        double[] out = new double[rows * C];
        for (int r = 0; r < rows; r++) {
            double ms = 0;
            for (int c = 0; c < C; c++) {
                ms += x[r * C + c] * x[r * C + c];
            }
            double rstd = 1 / Math.sqrt(ms / C + EPS);
            for (int c = 0; c < C; c++) {
                out[r * C + c] = w[c] * x[r * C + c] * rstd;
            }
        }
        return out;
    }

    static double[] layerNorm(double[] x, double[] w, double[] b, int rows, int C) {
        double[] out = new double[rows * C];
        for (int r = 0; r < rows; r++) {
            double mean = 0;
            for (int c = 0; c < C; c++) {
                mean += x[r * C + c];
            }
            mean /= C;
            double var = 0;
            for (int c = 0; c < C; c++) {
                var += (x[r * C + c] - mean) * (x[r * C + c] - mean);
            }
            double rstd = 1 / Math.sqrt(var / C + EPS);
            for (int c = 0; c < C; c++) {
                out[r * C + c] = (x[r * C + c] - mean) * rstd * w[c] + b[c];
            }
        }
        return out;
    }

    private static double[] plus(float[] prior, double[] grad, boolean accumulate) {
        double[] out = grad.clone();
        if (accumulate) {
            for (int i = 0; i < out.length; i++) {
                out[i] += prior[i];
            }
        }
        return out;
    }

    @Property(tries = 60)
    void rmsNormForwardMatchesReference(@ForAll("sizes") int rows, @ForAll("sizes") int C, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] x = uniform(rnd, rows * C, -2, 2);
        float[] w = uniform(rnd, C, -2, 2);
        MemorySegment out = zeros(rows * C);
        CpuKernels.rmsNormForward(segment(x), segment(w), out, rows, C, EPS);
        assertClose(rmsNorm(doubles(x), doubles(w), rows, C), floats(out, rows * C), 1e-5, 1e-6, "rmsnorm");
    }

    @Property(tries = 40)
    void rmsNormBackwardMatchesFiniteDifferences(@ForAll("smallRows") int rows, @ForAll("sizes") int C,
                                                 @ForAll boolean accumulateDw, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] x = uniform(rnd, rows * C, -2, 2);
        float[] w = uniform(rnd, C, -2, 2);
        float[] dy = uniform(rnd, rows * C, -1, 1);
        float[] priorDw = uniform(rnd, C, -1, 1);
        MemorySegment dx = zeros(rows * C);
        MemorySegment dw = segment(priorDw);
        CpuKernels.rmsNormBackward(segment(x), segment(w), segment(dy), dx, dw, rows, C, EPS, accumulateDw);

        double[] xd = doubles(x);
        double[] wd = doubles(w);
        double[] g = doubles(dy);
        double[] dxRef = numericGradient(xd, xv -> dot(g, rmsNorm(xv, wd, rows, C)));
        double[] dwRef = numericGradient(wd, wv -> dot(g, rmsNorm(xd, wv, rows, C)));
        assertClose(dxRef, floats(dx, rows * C), 1e-5, 1e-6, "dx");
        assertClose(plus(priorDw, dwRef, accumulateDw), floats(dw, C), 1e-5, 1e-6, "dw");
    }

    @Property(tries = 60)
    void layerNormForwardMatchesReference(@ForAll("sizes") int rows, @ForAll("sizes") int C, @ForAll long seed) {
        Random rnd = new Random(seed);
        // A large common offset makes a one-pass E[x^2] - E[x]^2 variance visibly wrong.
        float offset = (float) (100 * rnd.nextGaussian());
        float[] x = uniform(rnd, rows * C, offset - 2, offset + 2);
        float[] w = uniform(rnd, C, -2, 2);
        float[] b = uniform(rnd, C, -1, 1);
        MemorySegment out = zeros(rows * C);
        CpuKernels.layerNormForward(segment(x), segment(w), segment(b), out, rows, C, EPS);
        assertClose(layerNorm(doubles(x), doubles(w), doubles(b), rows, C), floats(out, rows * C), 1e-5, 1e-6,
                "layernorm");
    }

    @Property(tries = 40)
    void layerNormBackwardMatchesFiniteDifferences(@ForAll("smallRows") int rows, @ForAll("sizes") int C,
                                                   @ForAll boolean accumulateParams, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] x = uniform(rnd, rows * C, -2, 2);
        float[] w = uniform(rnd, C, -2, 2);
        float[] b = uniform(rnd, C, -1, 1);
        float[] dy = uniform(rnd, rows * C, -1, 1);
        float[] priorDw = uniform(rnd, C, -1, 1);
        float[] priorDb = uniform(rnd, C, -1, 1);
        MemorySegment dx = zeros(rows * C);
        MemorySegment dw = segment(priorDw);
        MemorySegment db = segment(priorDb);
        CpuKernels.layerNormBackward(segment(x), segment(w), segment(dy), dx, dw, db, rows, C, EPS,
                accumulateParams);

        double[] xd = doubles(x);
        double[] wd = doubles(w);
        double[] bd = doubles(b);
        double[] g = doubles(dy);
        double[] dxRef = numericGradient(xd, xv -> dot(g, layerNorm(xv, wd, bd, rows, C)));
        double[] dwRef = numericGradient(wd, wv -> dot(g, layerNorm(xd, wv, bd, rows, C)));
        double[] dbRef = numericGradient(bd, bv -> dot(g, layerNorm(xd, wd, bv, rows, C)));
        assertClose(dxRef, floats(dx, rows * C), 1e-5, 1e-6, "dx");
        assertClose(plus(priorDw, dwRef, accumulateParams), floats(dw, C), 1e-5, 1e-6, "dw");
        assertClose(plus(priorDb, dbRef, accumulateParams), floats(db, C), 1e-5, 1e-6, "db");
    }
}
