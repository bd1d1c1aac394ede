package dev.collie.runtime.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * RMSNorm and LayerNorm forward and backward on the Vector API, each a single pass over a row per phase, with
 * the semantics of {@link CpuKernels#rmsNormForward} and {@link CpuKernels#rmsNormBackward} (which
 * accumulate in double; here the row sums are float lanes, so results agree to float rounding, not
 * bit for bit). Rows run in parallel; the weight gradient is summed over fixed blocks of rows and
 * the blocks added in order, so results do not depend on the thread count.
 */
public final class FusedNorms {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Rows per task: enough work to amortise a fork, few enough to keep both cores busy. */
    private static final int ROW_BLOCK = 32;

    private FusedNorms() {}

    /**
     * {@code out = w * x * rsqrt(mean(x^2) + eps)} per row.
     *
     * @param x   [rows, C]
     * @param w   [C]
     * @param out [rows, C]
     */
    public static void rmsNormForward(MemorySegment x, MemorySegment w, MemorySegment out, int rows, int C, float eps) {
        forBlocks(rows, C, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * C * 4;
                float rstd = rstd(x, base, C, eps);
                int c = 0;
                for (; c + L <= C; c += L) {
                    long o = base + (long) c * 4;
                    FloatVector xv = FloatVector.fromMemorySegment(S, x, o, ORDER);
                    FloatVector wv = FloatVector.fromMemorySegment(S, w, (long) c * 4, ORDER);
                    wv.mul(xv.mul(rstd)).intoMemorySegment(out, o, ORDER);
                }
                for (; c < C; c++) {
                    long o = base + (long) c * 4;
                    out.set(CpuKernels.F32, o, w.getAtIndex(CpuKernels.F32, c) * (x.get(CpuKernels.F32, o) * rstd));
                }
            }
        });
    }

    /**
     * Backward of {@link #rmsNormForward}: with {@code r = rsqrt(mean(x^2) + eps)},
     * {@code dx = r*w*dy - x * r^3 * mean(w*dy*x)} and {@code dw = sum_rows dy * x * r}.
     *
     * @param dx [rows, C] overwritten
     * @param dw [C] overwritten
     */
    public static void rmsNormBackward(MemorySegment x, MemorySegment w, MemorySegment dy, MemorySegment dx,
                                       MemorySegment dw, int rows, int C, float eps) {
        int blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
        float[][] partial = new float[blocks][C];
        IntStream range = IntStream.range(0, blocks);
        (blocks > 1 && (long) rows * C > (1 << 15) ? range.parallel() : range).forEach(blk -> {
            float[] dwPart = partial[blk];
            int r1 = Math.min(rows, (blk + 1) * ROW_BLOCK);
            for (int r = blk * ROW_BLOCK; r < r1; r++) {
                long base = (long) r * C * 4;
                float rs = rstd(x, base, C, eps);
                FloatVector acc = FloatVector.zero(S);
                int c = 0;
                for (; c + L <= C; c += L) {
                    long o = base + (long) c * 4;
                    FloatVector g = FloatVector.fromMemorySegment(S, w, (long) c * 4, ORDER)
                            .mul(FloatVector.fromMemorySegment(S, dy, o, ORDER));
                    acc = g.fma(FloatVector.fromMemorySegment(S, x, o, ORDER), acc);
                }
                float dot = laneSum(acc);
                for (; c < C; c++) {
                    long o = base + (long) c * 4;
                    dot += w.getAtIndex(CpuKernels.F32, c) * dy.get(CpuKernels.F32, o) * x.get(CpuKernels.F32, o);
                }
                float coef = rs * rs * rs * dot / C;
                c = 0;
                for (; c + L <= C; c += L) {
                    long o = base + (long) c * 4;
                    FloatVector dyv = FloatVector.fromMemorySegment(S, dy, o, ORDER);
                    FloatVector xv = FloatVector.fromMemorySegment(S, x, o, ORDER);
                    FloatVector g = FloatVector.fromMemorySegment(S, w, (long) c * 4, ORDER).mul(dyv);
                    g.mul(rs).sub(xv.mul(coef)).intoMemorySegment(dx, o, ORDER);
                    dyv.mul(xv).fma(FloatVector.broadcast(S, rs), FloatVector.fromArray(S, dwPart, c)).intoArray(dwPart, c);
                }
                for (; c < C; c++) {
                    long o = base + (long) c * 4;
                    float dyc = dy.get(CpuKernels.F32, o);
                    float xc = x.get(CpuKernels.F32, o);
                    dx.set(CpuKernels.F32, o, rs * (w.getAtIndex(CpuKernels.F32, c) * dyc) - coef * xc);
                    dwPart[c] = Math.fma(dyc * xc, rs, dwPart[c]);
                }
            }
        });
        for (int c = 0; c < C; c++) {
            double sum = 0;
            for (float[] p : partial) {
                sum += p[c];
            }
            dw.setAtIndex(CpuKernels.F32, c, (float) sum);
        }
    }

    /**
     * LayerNorm, {@code out = (x - mean) * rstd * w + b} per row with {@code rstd = 1 / sqrt(var + eps)}
     * (the variance taken around the mean in a second pass, as {@link CpuKernels#layerNormForward} does in
     * double; here in float lanes, so the two agree to float rounding).
     *
     * @param x   [rows, C]
     * @param w   [C]
     * @param b   [C]
     * @param out [rows, C]
     */
    public static void layerNormForward(MemorySegment x, MemorySegment w, MemorySegment b, MemorySegment out, int rows,
                                        int C, float eps) {
        forBlocks(rows, C, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * C * 4;
                float mean = rowMean(x, base, C);
                float rstd = layerRstd(x, base, C, mean, eps);
                int c = 0;
                for (; c + L <= C; c += L) {
                    long o = base + (long) c * 4;
                    FloatVector xhat = FloatVector.fromMemorySegment(S, x, o, ORDER).sub(mean).mul(rstd);
                    xhat.fma(FloatVector.fromMemorySegment(S, w, (long) c * 4, ORDER),
                            FloatVector.fromMemorySegment(S, b, (long) c * 4, ORDER)).intoMemorySegment(out, o, ORDER);
                }
                for (; c < C; c++) {
                    long o = base + (long) c * 4;
                    float xhat = (x.get(CpuKernels.F32, o) - mean) * rstd;
                    out.set(CpuKernels.F32, o, Math.fma(xhat, w.getAtIndex(CpuKernels.F32, c),
                            b.getAtIndex(CpuKernels.F32, c)));
                }
            }
        });
    }

    /**
     * Backward of {@link #layerNormForward}: with {@code xhat = (x - mean) * rstd} and {@code g = dy * w},
     * {@code dx = rstd * (g - mean(g) - xhat * mean(g * xhat))}, {@code dw = sum_rows dy * xhat},
     * {@code db = sum_rows dy}. The parameter gradients are summed per fixed block of rows, the blocks added
     * in order, so the result does not depend on the thread count.
     *
     * @param dx [rows, C] overwritten
     * @param dw [C] overwritten
     * @param db [C] overwritten
     */
    public static void layerNormBackward(MemorySegment x, MemorySegment w, MemorySegment dy, MemorySegment dx,
                                         MemorySegment dw, MemorySegment db, int rows, int C, float eps) {
        int blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
        float[][] dwParts = new float[blocks][C];
        float[][] dbParts = new float[blocks][C];
        IntStream range = IntStream.range(0, blocks);
        (blocks > 1 && (long) rows * C > (1 << 15) ? range.parallel() : range).forEach(blk -> {
            float[] dwPart = dwParts[blk];
            float[] dbPart = dbParts[blk];
            int r1 = Math.min(rows, (blk + 1) * ROW_BLOCK);
            for (int r = blk * ROW_BLOCK; r < r1; r++) {
                long base = (long) r * C * 4;
                float mean = rowMean(x, base, C);
                float rstd = layerRstd(x, base, C, mean, eps);
                // sums of g and g * xhat over the row
                FloatVector gAcc = FloatVector.zero(S);
                FloatVector gxAcc = FloatVector.zero(S);
                int c = 0;
                for (; c + L <= C; c += L) {
                    long o = base + (long) c * 4;
                    FloatVector g = FloatVector.fromMemorySegment(S, dy, o, ORDER)
                            .mul(FloatVector.fromMemorySegment(S, w, (long) c * 4, ORDER));
                    FloatVector xhat = FloatVector.fromMemorySegment(S, x, o, ORDER).sub(mean).mul(rstd);
                    gAcc = gAcc.add(g);
                    gxAcc = g.fma(xhat, gxAcc);
                }
                float gSum = laneSum(gAcc);
                float gxSum = laneSum(gxAcc);
                for (; c < C; c++) {
                    long o = base + (long) c * 4;
                    float g = dy.get(CpuKernels.F32, o) * w.getAtIndex(CpuKernels.F32, c);
                    float xhat = (x.get(CpuKernels.F32, o) - mean) * rstd;
                    gSum += g;
                    gxSum = Math.fma(g, xhat, gxSum);
                }
                float gMean = gSum / C;
                float gxMean = gxSum / C;
                c = 0;
                for (; c + L <= C; c += L) {
                    long o = base + (long) c * 4;
                    FloatVector dyv = FloatVector.fromMemorySegment(S, dy, o, ORDER);
                    FloatVector g = dyv.mul(FloatVector.fromMemorySegment(S, w, (long) c * 4, ORDER));
                    FloatVector xhat = FloatVector.fromMemorySegment(S, x, o, ORDER).sub(mean).mul(rstd);
                    g.sub(gMean).sub(xhat.mul(gxMean)).mul(rstd).intoMemorySegment(dx, o, ORDER);
                    dyv.fma(xhat, FloatVector.fromArray(S, dwPart, c)).intoArray(dwPart, c);
                    dyv.add(FloatVector.fromArray(S, dbPart, c)).intoArray(dbPart, c);
                }
                for (; c < C; c++) {
                    long o = base + (long) c * 4;
                    float dyc = dy.get(CpuKernels.F32, o);
                    float g = dyc * w.getAtIndex(CpuKernels.F32, c);
                    float xhat = (x.get(CpuKernels.F32, o) - mean) * rstd;
                    dx.set(CpuKernels.F32, o, (g - gMean - xhat * gxMean) * rstd);
                    dwPart[c] = Math.fma(dyc, xhat, dwPart[c]);
                    dbPart[c] += dyc;
                }
            }
        });
        for (int c = 0; c < C; c++) {
            double sw = 0;
            double sb = 0;
            for (int blk = 0; blk < blocks; blk++) {
                sw += dwParts[blk][c];
                sb += dbParts[blk][c];
            }
            dw.setAtIndex(CpuKernels.F32, c, (float) sw);
            db.setAtIndex(CpuKernels.F32, c, (float) sb);
        }
    }

    /** Mean of one row, lanes summed in order. */
    private static float rowMean(MemorySegment x, long base, int C) {
        FloatVector acc = FloatVector.zero(S);
        int c = 0;
        for (; c + L <= C; c += L) {
            acc = acc.add(FloatVector.fromMemorySegment(S, x, base + (long) c * 4, ORDER));
        }
        double sum = laneSum(acc);
        for (; c < C; c++) {
            sum += x.get(CpuKernels.F32, base + (long) c * 4);
        }
        return (float) (sum / C);
    }

    /** 1 / sqrt(mean((x - mean)^2) + eps) of one row. */
    private static float layerRstd(MemorySegment x, long base, int C, float mean, float eps) {
        FloatVector acc = FloatVector.zero(S);
        int c = 0;
        for (; c + L <= C; c += L) {
            FloatVector d = FloatVector.fromMemorySegment(S, x, base + (long) c * 4, ORDER).sub(mean);
            acc = d.fma(d, acc);
        }
        double sumSq = laneSum(acc);
        for (; c < C; c++) {
            double d = x.get(CpuKernels.F32, base + (long) c * 4) - mean;
            sumSq += d * d;
        }
        return (float) (1.0 / Math.sqrt(sumSq / C + eps));
    }

    /** rsqrt(mean(x^2) + eps) of one row. */
    private static float rstd(MemorySegment x, long base, int C, float eps) {
        FloatVector acc = FloatVector.zero(S);
        int c = 0;
        for (; c + L <= C; c += L) {
            FloatVector v = FloatVector.fromMemorySegment(S, x, base + (long) c * 4, ORDER);
            acc = v.fma(v, acc);
        }
        double sumSq = laneSum(acc);
        for (; c < C; c++) {
            double v = x.get(CpuKernels.F32, base + (long) c * 4);
            sumSq += v * v;
        }
        return (float) (1.0 / Math.sqrt(sumSq / C + eps));
    }

    /**
     * The lanes summed in index order: {@code reduceLanes(ADD)} leaves the order open, and it may
     * differ between interpreted and compiled code, which would break bit-exact resume.
     */
    static float laneSum(FloatVector v) {
        float s = 0;
        for (int i = 0; i < L; i++) {
            s += v.lane(i);
        }
        return s;
    }

    private interface RowRange {
        void run(int from, int to);
    }

    private static void forBlocks(int rows, int C, RowRange body) {
        int blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
        IntStream range = IntStream.range(0, blocks);
        (blocks > 1 && (long) rows * C > (1 << 15) ? range.parallel() : range)
                .forEach(b -> body.run(b * ROW_BLOCK, Math.min(rows, (b + 1) * ROW_BLOCK)));
    }
}
