package dev.collie.runtime.optim;

import dev.collie.runtime.optim.OptimizerKernels.AdaLomoConfig;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * The kernels against a deliberately naive double-precision reference on random shapes (many
 * not multiples of 8, including 1 x m, m x 1 and 1-D), configurations and step counts.
 *
 * <p>The AdaLomo reference follows the paper's notation rather than the kernel's: it keeps row and
 * column <em>sums</em> (R = S 1, C = 1^T S), materialises the whole V-hat = R C / (1^T R), keeps p
 * and every state in double, and never re-reads rounded values. Agreement therefore checks the
 * algebra (means vs sums, factored vs materialised) as well as the plumbing.
 */
class KernelPropertiesTest {
    /**
     * A float32 kernel against a double reference over several steps: rounding compounds, and an
     * element at the floor (1% of the rms) can lose a few more bits to cancellation (one seed reached
     * 1.02e-5 at step 3). A wrong formula is off by far more than this.
     */
    private static final double PARAM_REL = 3e-5;
    private static final double STATE_REL = 1e-5;
    private static final double FLOOR = 1e-2;

    @Property(tries = 300)
    void adalomoMatchesDoubleReference(
            @ForAll @IntRange(min = 1, max = 40) int rows,
            @ForAll @IntRange(min = 0, max = 40) int cols,
            @ForAll @IntRange(min = 1, max = 4) int steps,
            @ForAll long seed) {
        Random rnd = new Random(seed);
        AdaLomoConfig cfg = new AdaLomoConfig(
                pick(rnd, 1e-30f, 1e-8f),
                1e-3f,
                pick(rnd, 1.0f, 0.5f, 2.0f),
                pick(rnd, -0.8f, -0.5f),
                pick(rnd, 1f, 1024f, 16384f),
                pick(rnd, 0f, 1.5f));
        float weightDecay = pick(rnd, 0f, 0.1f);
        // Tiny parameters exercise the eps2 floor of the relative step size.
        float pScale = pick(rnd, 1f, 0.02f, 1e-4f);
        int n = cols == 0 ? rows : rows * cols;

        float[] p0 = new float[n];
        for (int i = 0; i < n; i++) {
            p0[i] = (float) (rnd.nextGaussian() * pScale);
        }
        Reference ref = new Reference(rows, cols, p0, cfg);
        boolean vector = cols == 0 || rows == 1;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = Segs.of(arena, p0);
            MemorySegment row = vector ? null : Segs.zeros(arena, rows);
            MemorySegment col = vector ? null : Segs.zeros(arena, cols);
            MemorySegment full = vector ? Segs.zeros(arena, n) : null;
            for (int t = 1; t <= steps; t++) {
                float[] g = new float[n];
                for (int i = 0; i < n; i++) {
                    g[i] = (float) (rnd.nextGaussian() * cfg.lossScale() * 2);
                }
                float lr = pick(rnd, 0.1f, 0.01f);
                float scale = pick(rnd, 1f, 0.37f);
                OptimizerKernels.adalomoUpdate(p, Segs.of(arena, g), rows, cols, row, col, full, t, lr, scale,
                        weightDecay, cfg);
                ref.step(g, t, lr, scale, weightDecay);

                String at = rows + "x" + cols + " step " + t + " " + cfg + " wd=" + weightDecay;
                Approx.assertRelClose(at + " p", toDouble(Segs.read(p)), ref.p, PARAM_REL, FLOOR);
                if (vector) {
                    Approx.assertRelClose(at + " v", toDouble(Segs.read(full)), ref.v, STATE_REL, 0);
                } else {
                    // Kernel state holds means: R / cols and C / rows.
                    Approx.assertRelClose(at + " row", toDouble(Segs.read(row)), divide(ref.r, cols), STATE_REL, 0);
                    Approx.assertRelClose(at + " col", toDouble(Segs.read(col)), divide(ref.c, rows), STATE_REL, 0);
                }
            }
        }
    }

    @Property(tries = 300)
    void lomoMatchesDoubleReference(
            @ForAll @IntRange(min = 0, max = 300) int n,
            @ForAll long seed) {
        Random rnd = new Random(seed);
        float lr = (float) Math.exp(-3 - 5 * rnd.nextDouble());
        float scale = pick(rnd, 1f, (float) rnd.nextDouble());
        float wd = pick(rnd, 0f, 0.01f, 0.3f);
        float[] p0 = new float[n];
        float[] g = new float[n];
        double[] expected = new double[n];
        for (int i = 0; i < n; i++) {
            p0[i] = (float) rnd.nextGaussian();
            g[i] = (float) (rnd.nextGaussian() * 10);
            double decay = wd > 0 ? 1.0 - (double) lr * wd : 1.0;
            expected[i] = p0[i] * decay - (double) lr * scale * g[i];
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = Segs.of(arena, p0);
            OptimizerKernels.lomoUpdate(p, Segs.of(arena, g), n, lr, scale, wd);
            Approx.assertRelClose("lomo n=" + n + " lr=" + lr + " wd=" + wd, toDouble(Segs.read(p)), expected,
                    PARAM_REL, FLOOR);
        }
    }

    /** Straightforward double-precision AdaLomo (paper notation, full V-hat materialised). */
    private static final class Reference {
        final int rows;
        final int cols;
        final boolean vector;
        final double[] p;
        final double[] r;
        final double[] c;
        final double[] v;
        final AdaLomoConfig cfg;

        Reference(int rows, int cols, float[] p0, AdaLomoConfig cfg) {
            this.rows = rows;
            this.cols = cols;
            this.vector = cols == 0 || rows == 1;
            this.p = toDouble(p0);
            this.r = new double[rows];
            this.c = new double[cols];
            this.v = new double[p0.length];
            this.cfg = cfg;
        }

        void step(float[] gRaw, int t, double lr, double scale, double wd) {
            int n = p.length;
            double[] gg = new double[n];
            for (int k = 0; k < n; k++) {
                double x = gRaw[k] / (double) cfg.lossScale();
                if (cfg.clipGradValue() > 0) {
                    x = Math.clamp(x, -cfg.clipGradValue(), (double) cfg.clipGradValue());
                }
                gg[k] = x * scale;
            }
            double beta = 1 - Math.pow(t, cfg.decayRate());
            double[] vhat = new double[n];
            if (vector) {
                for (int k = 0; k < n; k++) {
                    v[k] = beta * v[k] + (1 - beta) * (gg[k] * gg[k] + cfg.eps1());
                    vhat[k] = v[k];
                }
            } else {
                double[] rowSum = new double[rows];
                double[] colSum = new double[cols];
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        double s = gg[i * cols + j] * gg[i * cols + j] + cfg.eps1();
                        rowSum[i] += s;
                        colSum[j] += s;
                    }
                }
                double total = 0;
                for (int i = 0; i < rows; i++) {
                    r[i] = beta * r[i] + (1 - beta) * rowSum[i];
                    total += r[i];
                }
                for (int j = 0; j < cols; j++) {
                    c[j] = beta * c[j] + (1 - beta) * colSum[j];
                }
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        vhat[i * cols + j] = r[i] * c[j] / total;
                    }
                }
            }
            double[] u = new double[n];
            for (int k = 0; k < n; k++) {
                u[k] = gg[k] / Math.sqrt(vhat[k]);
            }
            double clip = Math.max(1, Approx.rms(u) / cfg.clipThreshold());
            double eta = lr * Math.max(cfg.eps2(), Approx.rms(p));
            for (int k = 0; k < n; k++) {
                double decayed = wd > 0 ? (1 - eta * wd) * p[k] : p[k];
                p[k] = decayed - eta * u[k] / clip;
            }
        }
    }

    private static float pick(Random rnd, float... choices) {
        return choices[rnd.nextInt(choices.length)];
    }

    private static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    private static double[] divide(double[] x, double by) {
        double[] d = new double[x.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = x[i] / by;
        }
        return d;
    }
}
