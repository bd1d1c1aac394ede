package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.*;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

class RopeTest {

    @Provide
    Arbitrary<Integer> headSizes() {
        return Arbitraries.of(2, 6, 8, 18, 34, 66);
    }

    @Provide
    Arbitrary<Integer> lengths() {
        return Arbitraries.of(1, 3, 17, 33, 65);
    }

    @Provide
    Arbitrary<Integer> smallLengths() {
        return Arbitraries.of(1, 3, 17);
    }

    @Provide
    Arbitrary<Integer> smallHeadSizes() {
        return Arbitraries.of(2, 6, 8, 18);
    }

    @Provide
    Arbitrary<Double> thetas() {
        return Arbitraries.of(10_000.0, 500_000.0);
    }

    /** Hugging Face apply_rotary_pos_emb spelled out literally, in double: x*cos + rotate_half(x)*sin. */
    static double[] rope(double[] x, int B, int H, int T, int D, double theta) {
        int half = D / 2;
        double[] out = new double[x.length];
        for (int bh = 0; bh < B * H; bh++) {
            for (int t = 0; t < T; t++) {
                int base = (bh * T + t) * D;
                for (int d = 0; d < D; d++) {
                    double invFreq = 1 / Math.pow(theta, (2.0 * (d % half)) / D);
                    double angle = t * invFreq;
                    double rotated = d < half ? -x[base + d + half] : x[base + d - half];
                    out[base + d] = x[base + d] * Math.cos(angle) + rotated * Math.sin(angle);
                }
            }
        }
        return out;
    }

    @Property(tries = 50)
    void forwardMatchesReference(@ForAll("lengths") int T, @ForAll("headSizes") int D,
                                 @ForAll("thetas") double theta, @ForAll long seed) {
        int B = 2;
        int H = 3;
        int n = B * H * T * D;
        float[] x = uniform(new Random(seed), n, -2, 2);
        MemorySegment out = zeros(n);
        CpuKernels.rope(segment(x), out, B, H, T, D, theta, false);
        assertClose(rope(doubles(x), B, H, T, D, theta), floats(out, n), 1e-5, 1e-6, "rope");
    }

    @Property(tries = 50)
    void inverseUndoesForward(@ForAll("lengths") int T, @ForAll("headSizes") int D,
                              @ForAll("thetas") double theta, @ForAll long seed) {
        int B = 1;
        int H = 2;
        int n = B * H * T * D;
        float[] x = uniform(new Random(seed), n, -2, 2);
        MemorySegment rotated = zeros(n);
        MemorySegment back = zeros(n);
        CpuKernels.rope(segment(x), rotated, B, H, T, D, theta, false);
        CpuKernels.rope(rotated, back, B, H, T, D, theta, true);
        assertClose(doubles(x), floats(back, n), 1e-5, 1e-6, "inverse(rope(x))");
    }

    @Property(tries = 30)
    void inverseIsTheBackward(@ForAll("smallLengths") int T, @ForAll("smallHeadSizes") int D,
                              @ForAll("thetas") double theta, @ForAll long seed) {
        int B = 1;
        int H = 2;
        int n = B * H * T * D;
        Random rnd = new Random(seed);
        float[] x = uniform(rnd, n, -2, 2);
        float[] dy = uniform(rnd, n, -1, 1);
        MemorySegment dx = zeros(n);
        CpuKernels.rope(segment(dy), dx, B, H, T, D, theta, true);
        double[] g = doubles(dy);
        double[] expected = numericGradient(doubles(x), xv -> dot(g, rope(xv, B, H, T, D, theta)));
        assertClose(expected, floats(dx, n), 1e-5, 1e-6, "dx");
    }

    @Test
    void rejectsOddHeadSizeAndAliasedOutput() {
        MemorySegment x = zeros(2 * 3 * 6);
        MemorySegment out = zeros(2 * 3 * 6);
        assertThrows(IllegalArgumentException.class, () -> CpuKernels.rope(x, out, 1, 2, 6, 3, 10_000, false));
        assertThrows(IllegalArgumentException.class, () -> CpuKernels.rope(x, x, 1, 3, 2, 6, 10_000, false));
        assertThrows(IllegalArgumentException.class,
                () -> CpuKernels.rope(x, x.asSlice(4), 1, 2, 2, 6, 10_000, false));
    }
}
