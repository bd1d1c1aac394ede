package dev.collie.runtime.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Element-wise closeness checks with messages that point at the first bad element. */
final class Approx {
    private Approx() {}

    static double rms(float[] x) {
        double s = 0;
        for (float v : x) {
            s += (double) v * v;
        }
        return Math.sqrt(s / Math.max(1, x.length));
    }

    static double rms(double[] x) {
        double s = 0;
        for (double v : x) {
            s += v * v;
        }
        return Math.sqrt(s / Math.max(1, x.length));
    }

    /**
     * Relative error of every element, {@code |a - e| / max(|e|, floor)}, must not exceed {@code
     * rel}. The floor ({@code floorFraction * RMS(expected)}) only matters for elements that are
     * near zero by accident, whose relative error says nothing about the kernel.
     */
    static void assertRelClose(String what, float[] actual, float[] expected, double rel, double floorFraction) {
        double[] e = new double[expected.length];
        for (int i = 0; i < e.length; i++) {
            e[i] = expected[i];
        }
        double[] a = new double[actual.length];
        for (int i = 0; i < a.length; i++) {
            a[i] = actual[i];
        }
        assertRelClose(what, a, e, rel, floorFraction);
    }

    static void assertRelClose(String what, double[] actual, double[] expected, double rel, double floorFraction) {
        assertEquals(expected.length, actual.length, what + ": length");
        double floor = Math.max(floorFraction * rms(expected), Double.MIN_NORMAL);
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor);
            if (!(err <= rel)) {
                fail(String.format("%s[%d]: actual %.9g, expected %.9g, relative error %.3g > %.1g",
                        what, i, actual[i], expected[i], err, rel));
            }
        }
    }

    /**
     * Compares the update each side applied, {@code after - before} (each side with its own
     * {@code before}), element-wise: {@code |da - de| <= rel * |de| + ulps * ulp(p)}. The ulp term
     * is the float32 rounding of the parameter itself, which no kernel can beat; the relative term
     * is what catches a wrong update (a 1e-4 error in an update of ~10% of p is ~1e-5 of p).
     */
    static void assertUpdateClose(String what, float[] before, float[] after, float[] expBefore, float[] expAfter,
            double rel, int ulps) {
        assertEquals(expAfter.length, after.length, what + ": length");
        for (int i = 0; i < after.length; i++) {
            double da = (double) after[i] - before[i];
            double de = (double) expAfter[i] - expBefore[i];
            double allowed = rel * Math.abs(de) + ulps * (double) Math.ulp(Math.max(Math.abs(expAfter[i]), Math.abs(expBefore[i])));
            if (!(Math.abs(da - de) <= allowed)) {
                fail(String.format("%s[%d]: applied update %.9g, expected %.9g (|diff| %.3g > allowed %.3g)",
                        what, i, da, de, Math.abs(da - de), allowed));
            }
        }
    }
}
