package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

class AttentionTest {

    /** {H, KV} pairs: grouped-query (4/2, 4/1), multi-head (4/4, 3/3) and single head. */
    @Provide
    Arbitrary<int[]> heads() {
        return Arbitraries.of(new int[] {4, 2}, new int[] {4, 1}, new int[] {4, 4}, new int[] {3, 3},
                new int[] {1, 1});
    }

    @Provide
    Arbitrary<Integer> lengths() {
        return Arbitraries.of(1, 3, 17, 33);
    }

    @Provide
    Arbitrary<Integer> headSizes() {
        return Arbitraries.of(1, 3, 8, 17);
    }

    @Provide
    Arbitrary<Integer> smallLengths() {
        return Arbitraries.of(1, 2, 3, 5, 9);
    }

    @Provide
    Arbitrary<Integer> smallHeadSizes() {
        return Arbitraries.of(1, 2, 3, 5, 8);
    }

    /**
     * Double reference: k and v are expanded to H heads with repeat_interleave, then
     * softmax(q k^T * scale + mask) v is evaluated with a full score row per query.
     */
    static double[] attention(double[] q, double[] k, double[] v, int B, int H, int KV, int T, int D,
                              boolean causal, double scale) {
        double[] out = new double[B * H * T * D];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                int kvBase = (b * KV + h / (H / KV)) * T * D;
                int qBase = (b * H + h) * T * D;
                for (int t = 0; t < T; t++) {
                    double[] scores = new double[T];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int u = 0; u < T; u++) {
                        double s = 0;
                        for (int d = 0; d < D; d++) {
                            s += q[qBase + t * D + d] * k[kvBase + u * D + d];
                        }
                        scores[u] = causal && u > t ? Double.NEGATIVE_INFINITY : s * scale;
                        max = Math.max(max, scores[u]);
                    }
                    double sum = 0;
                    for (int u = 0; u < T; u++) {
                        scores[u] = Math.exp(scores[u] - max);
                        sum += scores[u];
                    }
                    for (int u = 0; u < T; u++) {
                        for (int d = 0; d < D; d++) {
                            out[qBase + t * D + d] += scores[u] / sum * v[kvBase + u * D + d];
                        }
                    }
                }
            }
        }
        return out;
    }

    @Property(tries = 60)
    void forwardMatchesReference(@ForAll("heads") int[] heads, @ForAll("lengths") int T,
                                 @ForAll("headSizes") int D, @ForAll boolean causal, @ForAll long seed) {
        int B = 2;
        int H = heads[0];
        int KV = heads[1];
        Random rnd = new Random(seed);
        float[] q = uniform(rnd, B * H * T * D, -1, 1);
        float[] k = uniform(rnd, B * KV * T * D, -1, 1);
        float[] v = uniform(rnd, B * KV * T * D, -1, 1);
        float scale = (float) (1 / Math.sqrt(D));
        MemorySegment out = zeros(B * H * T * D);
        CpuKernels.attentionForward(segment(q), segment(k), segment(v), out, B, H, KV, T, D, causal, scale);
        double[] expected = attention(doubles(q), doubles(k), doubles(v), B, H, KV, T, D, causal, scale);
        assertClose(expected, floats(out, B * H * T * D), 1e-5, 2e-6, "attention out");
    }

    @Test
    void forwardIsStableForHugeScores() {
        // Scores in the thousands overflow exp even in double unless the row maximum is subtracted.
        int B = 1;
        int H = 2;
        int KV = 1;
        int T = 9;
        int D = 8;
        Random rnd = new Random(3);
        float[] q = uniform(rnd, B * H * T * D, -1, 1);
        float[] k = uniform(rnd, B * KV * T * D, -1, 1);
        float[] v = uniform(rnd, B * KV * T * D, -1, 1);
        float scale = 1000f;
        MemorySegment out = zeros(B * H * T * D);
        CpuKernels.attentionForward(segment(q), segment(k), segment(v), out, B, H, KV, T, D, false, scale);
        double[] expected = attention(doubles(q), doubles(k), doubles(v), B, H, KV, T, D, false, scale);
        // Float scores of this size carry ~1e-4 absolute rounding, hence the looser bound.
        assertClose(expected, floats(out, B * H * T * D), 1e-3, 1e-3, "attention out");
    }

    @Property(tries = 60)
    void backwardMatchesFiniteDifferences(@ForAll("heads") int[] heads, @ForAll("smallLengths") int T,
                                          @ForAll("smallHeadSizes") int D, @ForAll boolean causal,
                                          @ForAll long seed) {
        int B = 2;
        int H = heads[0];
        int KV = heads[1];
        int nq = B * H * T * D;
        int nkv = B * KV * T * D;
        Random rnd = new Random(seed);
        float[] q = uniform(rnd, nq, -1, 1);
        float[] k = uniform(rnd, nkv, -1, 1);
        float[] v = uniform(rnd, nkv, -1, 1);
        float[] dout = uniform(rnd, nq, -1, 1);
        float scale = (float) (1 / Math.sqrt(D));
        MemorySegment dq = zeros(nq);
        MemorySegment dk = zeros(nkv);
        MemorySegment dv = zeros(nkv);
        CpuKernels.attentionBackward(segment(q), segment(k), segment(v), segment(dout), dq, dk, dv,
                B, H, KV, T, D, causal, scale);

        double[] qd = doubles(q);
        double[] kd = doubles(k);
        double[] vd = doubles(v);
        double[] g = doubles(dout);
        double[] dqRef = numericGradient(qd, x -> dot(g, attention(x, kd, vd, B, H, KV, T, D, causal, scale)));
        double[] dkRef = numericGradient(kd, x -> dot(g, attention(qd, x, vd, B, H, KV, T, D, causal, scale)));
        double[] dvRef = numericGradient(vd, x -> dot(g, attention(qd, kd, x, B, H, KV, T, D, causal, scale)));
        assertClose(dqRef, floats(dq, nq), 1e-4, 1e-5, "dq");
        assertClose(dkRef, floats(dk, nkv), 1e-4, 1e-5, "dk");
        assertClose(dvRef, floats(dv, nkv), 1e-4, 1e-5, "dv");
    }

    @Test
    void resultsAreBitIdenticalForAnyThreadCount() {
        // B*H*T*T*D ≈ 2^18.8 takes the parallel path; the forward is also checked against the reference.
        int B = 2;
        int H = 4;
        int KV = 2;
        int T = 48;
        int D = 24;
        int nq = B * H * T * D;
        int nkv = B * KV * T * D;
        Random rnd = new Random(11);
        MemorySegment q = segment(uniform(rnd, nq, -1, 1));
        MemorySegment k = segment(uniform(rnd, nkv, -1, 1));
        MemorySegment v = segment(uniform(rnd, nkv, -1, 1));
        MemorySegment dout = segment(uniform(rnd, nq, -1, 1));
        float scale = (float) (1 / Math.sqrt(D));

        float[][] reference = null;
        for (int threads : new int[] {0, 1, 3, 8}) {
            MemorySegment out = zeros(nq);
            MemorySegment dq = zeros(nq);
            MemorySegment dk = zeros(nkv);
            MemorySegment dv = zeros(nkv);
            Runnable run = () -> {
                CpuKernels.attentionForward(q, k, v, out, B, H, KV, T, D, true, scale);
                CpuKernels.attentionBackward(q, k, v, dout, dq, dk, dv, B, H, KV, T, D, true, scale);
            };
            if (threads == 0) {
                run.run();
            } else {
                inPool(threads, run);
            }
            float[][] results = {floats(out, nq), floats(dq, nq), floats(dk, nkv), floats(dv, nkv)};
            if (reference == null) {
                double[] expected = attention(doubles(floats(q, nq)), doubles(floats(k, nkv)),
                        doubles(floats(v, nkv)), B, H, KV, T, D, true, scale);
                assertClose(expected, results[0], 1e-5, 2e-6, "attention out");
                reference = results;
            } else {
                for (int r = 0; r < results.length; r++) {
                    assertArrayEquals(reference[r], results[r], "result " + r + " with " + threads + " threads");
                }
            }
        }
    }

    @Test
    void rejectsKvHeadsThatDoNotDivideQueryHeads() {
        MemorySegment s = zeros(4 * 3 * 2);
        assertThrows(IllegalArgumentException.class,
                () -> CpuKernels.attentionForward(s, s, s, zeros(4 * 3 * 2), 1, 4, 3, 3, 2, true, 1f));
        assertThrows(IllegalArgumentException.class,
                () -> CpuKernels.attentionBackward(s, s, s, s, zeros(24), zeros(24), zeros(24),
                        1, 4, 3, 3, 2, true, 1f));
    }
}
