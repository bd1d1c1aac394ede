package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.floats;
import static dev.collie.runtime.kernels.Tensors.ids;
import static dev.collie.runtime.kernels.Tensors.segment;
import static dev.collie.runtime.kernels.Tensors.uniform;
import static dev.collie.runtime.kernels.Tensors.zeros;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/** The fused head + loss against the unfused ops it replaces (linear, cross_entropy and their gradients). */
class FusedKernelsTest {

    static double maxRel(float[] a, float[] b) {
        double diff = 0;
        double ref = 1e-30;
        for (int i = 0; i < a.length; i++) {
            diff = Math.max(diff, Math.abs(a[i] - b[i]));
            ref = Math.max(ref, Math.abs(b[i]));
        }
        return diff / ref;
    }

    @Property(tries = 25)
    void linearCrossEntropyEqualsTheUnfusedOps(@ForAll @IntRange(min = 1, max = 70) int n,
                                               @ForAll @IntRange(min = 1, max = 33) int c,
                                               @ForAll @IntRange(min = 2, max = 3000) int v) {
        Random rnd = new Random(n * 7919L + c * 31L + v);
        float[] h = uniform(rnd, n * c, -1, 1);
        float[] w = uniform(rnd, v * c, -1, 1);
        long[] t = new long[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(4) == 0 ? -100 : rnd.nextInt(v);
        }
        MemorySegment dh = zeros(n * c);
        MemorySegment dw = zeros(v * c);
        double fused = FusedKernels.linearCrossEntropy(segment(h), segment(w), ids(t), dh, dw, n, c, v, -100);

        MemorySegment logits = zeros(n * v);
        CpuKernels.matmulNT(segment(h), segment(w), logits, n, v, c, false);
        double loss = CpuKernels.crossEntropyForward(logits, ids(t), n, v, -100);
        MemorySegment dlogits = zeros(n * v);
        CpuKernels.crossEntropyBackward(logits, ids(t), dlogits, n, v, -100, 1f);
        MemorySegment dhRef = zeros(n * c);
        MemorySegment dwRef = zeros(v * c);
        CpuKernels.matmulNN(dlogits, segment(w), dhRef, n, c, v, false);
        CpuKernels.matmulTN(dlogits, segment(h), dwRef, n, v, c, false);

        assertEquals(loss, fused, 1e-6 * Math.max(1, Math.abs(loss)));
        double eh = maxRel(floats(dh, n * c), floats(dhRef, n * c));
        double ew = maxRel(floats(dw, v * c), floats(dwRef, v * c));
        assertEquals(0, eh, 1e-5, "dh");
        assertEquals(0, ew, 1e-5, "dw");
    }
}
