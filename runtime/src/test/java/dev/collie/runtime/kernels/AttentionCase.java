package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.fail;

/** Random inputs of one attention call and helpers to run and compare both implementations. */
final class AttentionCase {

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;

    /** How segment ids are laid out along T. */
    enum Segments {
        NONE,
        /** Packed examples: ids increase along T, with random boundaries. */
        PACKED,
        /** Arbitrary small ids, so one segment is spread over the row. */
        SCATTERED
    }

    final int B, H, KV, T, D;
    final boolean causal;
    final float scale;
    final MemorySegment q, k, v, dout, segments;

    AttentionCase(Arena arena, long seed, int B, int H, int KV, int T, int D, boolean causal,
                  Segments layout, float magnitude) {
        this.B = B;
        this.H = H;
        this.KV = KV;
        this.T = T;
        this.D = D;
        this.causal = causal;
        this.scale = (float) (1.0 / Math.sqrt(D));
        Random rnd = new Random(seed);
        q = random(arena, (long) B * H * T * D, rnd, magnitude);
        k = random(arena, (long) B * KV * T * D, rnd, magnitude);
        v = random(arena, (long) B * KV * T * D, rnd, 1f);
        dout = random(arena, (long) B * H * T * D, rnd, 1f);
        segments = switch (layout) {
            case NONE -> null;
            case PACKED -> packed(arena, B, T, rnd);
            case SCATTERED -> scattered(arena, B, T, rnd);
        };
    }

    long qSize() {
        return (long) B * H * T * D;
    }

    long kvSize() {
        return (long) B * KV * T * D;
    }

    /**
     * RMS, per output tensor (out, dq, dk, dv), of the sums of absolute values of the terms that
     * make up each element, with probabilities in double. Rounding errors of a float sum scale
     * with these, not with the (possibly cancelled) result: a saturated softmax makes dq and dk
     * tiny differences {@code P ∘ (dP − Di)} of much larger numbers.
     */
    double[] termMagnitudes() {
        int group = H / KV;
        double[] sums = new double[4];
        double[] dkAbs = new double[(int) kvSize()];
        double[] dvAbs = new double[(int) kvSize()];
        double[] p = new double[T];
        double[] dp = new double[T];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                long qBase = ((long) b * H + h) * T * D;
                long kvBase = ((long) b * KV + h / group) * T * D;
                for (int t = 0; t < T; t++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int u = 0; u < T; u++) {
                        p[u] = Double.NEGATIVE_INFINITY;
                        if (visible(b, t, u)) {
                            p[u] = dot(q, qBase + (long) t * D, k, kvBase + (long) u * D) * scale;
                            max = Math.max(max, p[u]);
                        }
                    }
                    double sum = 0;
                    for (int u = 0; u < T; u++) {
                        p[u] = Math.exp(p[u] - max);
                        sum += p[u];
                    }
                    // A float dot product errs in proportion to the sum of its terms' magnitudes, not to
                    // its value: dP = dO·V and Di = dO·O can cancel to 0 (one visible key: O = V, so
                    // dS = dP - Di is exactly 0) while their rounding stays eps times sum |dO_d V_d|.
                    double di = 0;
                    for (int u = 0; u < T; u++) {
                        p[u] /= sum;
                        dp[u] = absDot(dout, qBase + (long) t * D, v, kvBase + (long) u * D);
                        di += p[u] * dp[u];
                    }
                    for (int d = 0; d < D; d++) {
                        double outAbs = 0;
                        double dqAbs = 0;
                        for (int u = 0; u < T; u++) {
                            long kv = kvBase + (long) u * D + d;
                            double dsAbs = p[u] * (dp[u] + di);
                            outAbs += p[u] * Math.abs(v.getAtIndex(F32, kv));
                            dqAbs += scale * dsAbs * Math.abs(k.getAtIndex(F32, kv));
                            dkAbs[(int) kv] += scale * dsAbs * Math.abs(q.getAtIndex(F32, qBase + (long) t * D + d));
                            dvAbs[(int) kv] += p[u] * Math.abs(dout.getAtIndex(F32, qBase + (long) t * D + d));
                        }
                        sums[0] += outAbs * outAbs;
                        sums[1] += dqAbs * dqAbs;
                    }
                }
            }
        }
        for (int i = 0; i < dkAbs.length; i++) {
            sums[2] += dkAbs[i] * dkAbs[i];
            sums[3] += dvAbs[i] * dvAbs[i];
        }
        return new double[] {Math.sqrt(sums[0] / qSize()), Math.sqrt(sums[1] / qSize()),
                Math.sqrt(sums[2] / kvSize()), Math.sqrt(sums[3] / kvSize())};
    }

    boolean visible(int b, int t, int u) {
        if (causal && u > t) {
            return false;
        }
        return segments == null
                || segments.getAtIndex(I64, (long) b * T + u) == segments.getAtIndex(I64, (long) b * T + t);
    }

    /** {@code sum |a_d b_d|}: the magnitude a dot product's rounding scales with. */
    private double absDot(MemorySegment a, long aOff, MemorySegment b, long bOff) {
        double sum = 0;
        for (int d = 0; d < D; d++) {
            sum += Math.abs((double) a.getAtIndex(F32, aOff + d) * b.getAtIndex(F32, bOff + d));
        }
        return sum;
    }

    private double dot(MemorySegment a, long aOff, MemorySegment b, long bOff) {
        double sum = 0;
        for (int d = 0; d < D; d++) {
            sum += (double) a.getAtIndex(F32, aOff + d) * b.getAtIndex(F32, bOff + d);
        }
        return sum;
    }

    static MemorySegment random(Arena arena, long n, Random rnd, float magnitude) {
        MemorySegment s = arena.allocate(n * 4, 64);
        for (long i = 0; i < n; i++) {
            s.setAtIndex(F32, i, (float) (rnd.nextGaussian() * magnitude));
        }
        return s;
    }

    static MemorySegment floats(Arena arena, long n) {
        return arena.allocate(Math.max(1, n) * 4, 64);
    }

    private static MemorySegment packed(Arena arena, int B, int T, Random rnd) {
        MemorySegment s = arena.allocate((long) B * T * 8, 8);
        for (int b = 0; b < B; b++) {
            long id = rnd.nextInt(3);
            for (int t = 0; t < T; t++) {
                if (t > 0 && rnd.nextInt(Math.max(2, T / 3)) == 0) {
                    id++;
                }
                s.setAtIndex(I64, (long) b * T + t, id);
            }
        }
        return s;
    }

    private static MemorySegment scattered(Arena arena, int B, int T, Random rnd) {
        MemorySegment s = arena.allocate((long) B * T * 8, 8);
        for (long i = 0; i < (long) B * T; i++) {
            s.setAtIndex(I64, i, rnd.nextInt(3));
        }
        return s;
    }

    /**
     * Elementwise {@code |a - e| <= rtol * (|e| + rms(e))}: relative, with the tensor's RMS as the
     * floor so that elements that are small by cancellation are not judged against themselves.
     */
    static void assertClose(String what, MemorySegment actual, MemorySegment expected, long n, double rtol) {
        double sumSq = 0;
        for (long i = 0; i < n; i++) {
            double e = expected.getAtIndex(F32, i);
            sumSq += e * e;
        }
        assertClose(what, actual, expected, n, rtol, Math.sqrt(sumSq / Math.max(1, n)));
    }

    /** Elementwise {@code |a - e| <= rtol * (|e| + floor)}. */
    static void assertClose(String what, MemorySegment actual, MemorySegment expected, long n, double rtol,
                            double floor) {
        for (long i = 0; i < n; i++) {
            double a = actual.getAtIndex(F32, i);
            double e = expected.getAtIndex(F32, i);
            double err = Math.abs(a - e);
            if (!(err <= rtol * (Math.abs(e) + floor))) {
                fail(what + "[" + i + "]: got " + a + ", expected " + e + " (err " + err + ", floor " + floor + ")");
            }
        }
    }

    static boolean bitIdentical(MemorySegment a, MemorySegment b, long n) {
        return a.asSlice(0, n * 4).mismatch(b.asSlice(0, n * 4)) == -1;
    }
}
