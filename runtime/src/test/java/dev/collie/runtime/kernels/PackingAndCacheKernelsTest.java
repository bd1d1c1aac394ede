package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.floats;
import static dev.collie.runtime.kernels.Tensors.ids;
import static dev.collie.runtime.kernels.Tensors.segment;
import static dev.collie.runtime.kernels.Tensors.uniform;
import static dev.collie.runtime.kernels.Tensors.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * The kernels behind sequence packing (explicit positions, segment-masked attention) and
 * generation (a key/value cache), checked against the plain kernels on the unpacked pieces.
 */
class PackingAndCacheKernelsTest {

    /** Copies rows [from, from + len) of every (b, h) block of x [B, H, T, D] into [B, H, len, D]. */
    static float[] slice(float[] x, int B, int H, int T, int D, int from, int len) {
        float[] out = new float[B * H * len * D];
        for (int bh = 0; bh < B * H; bh++) {
            System.arraycopy(x, (bh * T + from) * D, out, bh * len * D, len * D);
        }
        return out;
    }

    @Property(tries = 30)
    void segmentMaskedAttentionEqualsAttentionOnEachExample(@ForAll @IntRange(min = 1, max = 9) int first,
                                                            @ForAll @IntRange(min = 1, max = 9) int second,
                                                            @ForAll @IntRange(min = 1, max = 9) int d) {
        int B = 1, H = 4, KV = 2, T = first + second;
        Random rnd = new Random(first * 100 + second * 10 + d);
        float[] q = uniform(rnd, B * H * T * d, -1, 1);
        float[] k = uniform(rnd, B * KV * T * d, -1, 1);
        float[] v = uniform(rnd, B * KV * T * d, -1, 1);
        long[] seg = new long[T];
        Arrays.fill(seg, first, T, 1);
        MemorySegment out = zeros(B * H * T * d);
        CpuKernels.attentionForward(segment(q), segment(k), segment(v), out, B, H, KV, T, d, true, 0.5f, ids(seg));
        float[] packed = floats(out, B * H * T * d);
        int[][] parts = {{0, first}, {first, second}};
        for (int[] part : parts) {
            MemorySegment alone = zeros(B * H * part[1] * d);
            CpuKernels.attentionForward(segment(slice(q, B, H, T, d, part[0], part[1])),
                    segment(slice(k, B, KV, T, d, part[0], part[1])), segment(slice(v, B, KV, T, d, part[0], part[1])),
                    alone, B, H, KV, part[1], d, true, 0.5f);
            assertArrayEquals(floats(alone, B * H * part[1] * d), slice(packed, B, H, T, d, part[0], part[1]),
                    "example at " + part[0]);
        }
        // The gradient of the packed row is the gradient of each example alone.
        float[] dout = uniform(rnd, B * H * T * d, -1, 1);
        MemorySegment dq = zeros(q.length), dk = zeros(k.length), dv = zeros(v.length);
        CpuKernels.attentionBackward(segment(q), segment(k), segment(v), segment(dout), dq, dk, dv, B, H, KV, T, d,
                true, 0.5f, ids(seg));
        for (int[] part : parts) {
            int n = part[1];
            MemorySegment dqa = zeros(B * H * n * d), dka = zeros(B * KV * n * d), dva = zeros(B * KV * n * d);
            CpuKernels.attentionBackward(segment(slice(q, B, H, T, d, part[0], n)), segment(slice(k, B, KV, T, d, part[0], n)),
                    segment(slice(v, B, KV, T, d, part[0], n)), segment(slice(dout, B, H, T, d, part[0], n)), dqa, dka, dva,
                    B, H, KV, n, d, true, 0.5f);
            assertArrayEquals(floats(dqa, B * H * n * d), slice(floats(dq, q.length), B, H, T, d, part[0], n));
            assertArrayEquals(floats(dka, B * KV * n * d), slice(floats(dk, k.length), B, KV, T, d, part[0], n));
            assertArrayEquals(floats(dva, B * KV * n * d), slice(floats(dv, v.length), B, KV, T, d, part[0], n));
        }
    }

    @Property(tries = 20)
    void ropeAtExplicitPositionsEqualsRopeOfTheLongerSequence(@ForAll @IntRange(min = 0, max = 20) int offset,
                                                              @ForAll @IntRange(min = 1, max = 7) int len) {
        int B = 2, H = 3, D = 6, T = offset + len;
        Random rnd = new Random(offset * 31 + len);
        float[] x = uniform(rnd, B * H * T * D, -1, 1);
        MemorySegment full = zeros(x.length);
        CpuKernels.rope(segment(x), full, B, H, T, D, 10000.0, false);
        float[] tail = slice(x, B, H, T, D, offset, len);
        long[] pos = new long[B * len];
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < len; t++) {
                pos[b * len + t] = offset + t;
            }
        }
        MemorySegment out = zeros(tail.length);
        CpuKernels.rope(segment(tail), out, B, H, len, D, 10000.0, false, ids(pos));
        assertArrayEquals(slice(floats(full, x.length), B, H, T, D, offset, len), floats(out, tail.length));
    }

    @Property(tries = 20)
    void decodingWithACacheEqualsFullCausalAttention(@ForAll @IntRange(min = 1, max = 6) int prompt,
                                                     @ForAll @IntRange(min = 1, max = 6) int generated) {
        int B = 2, H = 4, KV = 2, D = 5, T = prompt + generated, S = T + 3;
        Random rnd = new Random(prompt * 7 + generated);
        float[] q = uniform(rnd, B * H * T * D, -1, 1);
        float[] k = uniform(rnd, B * KV * T * D, -1, 1);
        float[] v = uniform(rnd, B * KV * T * D, -1, 1);
        MemorySegment full = zeros(q.length);
        CpuKernels.attentionForward(segment(q), segment(k), segment(v), full, B, H, KV, T, D, true, 0.4f);
        MemorySegment kc = zeros(B * KV * S * D), vc = zeros(B * KV * S * D);
        float[] decoded = new float[q.length];
        // prefill the prompt in one call, then one token per call
        int at = 0;
        for (int n : java.util.stream.IntStream.concat(java.util.stream.IntStream.of(prompt),
                java.util.stream.IntStream.generate(() -> 1).limit(generated)).toArray()) {
            long[] pos = new long[B * n];
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < n; t++) {
                    pos[b * n + t] = at + t;
                }
            }
            MemorySegment out = zeros(B * H * n * D);
            CpuKernels.cachedAttention(segment(slice(q, B, H, T, D, at, n)), segment(slice(k, B, KV, T, D, at, n)),
                    segment(slice(v, B, KV, T, D, at, n)), kc, vc, ids(pos), out, B, H, KV, n, S, D, 0.4f);
            float[] o = floats(out, B * H * n * D);
            for (int bh = 0; bh < B * H; bh++) {
                System.arraycopy(o, bh * n * D, decoded, (bh * T + at) * D, n * D);
            }
            at += n;
        }
        assertArrayEquals(floats(full, q.length), decoded);
    }
}
