package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.floats;
import static dev.collie.runtime.kernels.Tensors.segment;
import static dev.collie.runtime.kernels.Tensors.uniform;
import static dev.collie.runtime.kernels.Tensors.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/** The vectorised elementwise kernels against their scalar references, on sizes off the vector width. */
class VectorOpsTest {

    @Property(tries = 60)
    void binaryWithBroadcastingEqualsTheScalarLoop(@ForAll @IntRange(min = 1, max = 9) int rows,
                                                   @ForAll @IntRange(min = 1, max = 70) int cols,
                                                   @ForAll @IntRange(min = 0, max = 3) int opIndex,
                                                   @ForAll @IntRange(min = 0, max = 2) int shape) {
        VectorOps.Op op = VectorOps.Op.values()[opIndex];
        Random rnd = new Random(rows * 1000L + cols * 10L + opIndex + shape * 7);
        int n = rows * cols;
        int nb = switch (shape) {
            case 0 -> n;
            case 1 -> cols;
            default -> 1;
        };
        float[] a = uniform(rnd, n, 0.5, 2);
        float[] b = uniform(rnd, nb, 0.5, 2);
        for (boolean bFirst : new boolean[] {false, true}) {
            MemorySegment out = zeros(n);
            VectorOps.binary(op, segment(a), segment(b), out, n, nb, bFirst);
            float[] want = new float[n];
            for (int i = 0; i < n; i++) {
                want[i] = bFirst ? VectorOps.scalar(op, b[i % nb], a[i]) : VectorOps.scalar(op, a[i], b[i % nb]);
            }
            assertArrayEquals(want, floats(out, n), op + " bFirst=" + bFirst);
        }
    }

    @Property(tries = 30)
    void siluMatchesTheScalarReference(@ForAll @IntRange(min = 1, max = 5000) int n) {
        Random rnd = new Random(n);
        float[] x = uniform(rnd, n, -8, 8);
        float[] dy = uniform(rnd, n, -1, 1);
        MemorySegment fast = zeros(n);
        MemorySegment ref = zeros(n);
        VectorOps.siluForward(segment(x), fast, n);
        CpuKernels.siluForward(segment(x), ref, n);
        float[] f = floats(fast, n);
        float[] r = floats(ref, n);
        for (int i = 0; i < n; i++) {
            assertEquals(r[i], f[i], 2e-6 * Math.max(1, Math.abs(r[i])), "silu at " + i);
        }
        VectorOps.siluBackward(segment(x), segment(dy), fast, n);
        CpuKernels.siluBackward(segment(x), segment(dy), ref, n);
        f = floats(fast, n);
        r = floats(ref, n);
        for (int i = 0; i < n; i++) {
            assertEquals(r[i], f[i], 2e-6 * Math.max(1, Math.abs(r[i])), "silu grad at " + i);
        }
    }
}
