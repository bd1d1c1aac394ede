package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.floats;
import static dev.collie.runtime.kernels.Tensors.ids;
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

/**
 * The kernels of the compiler's fusion passes against their scalar references and against the
 * unfused ops they replace, on random shapes including sizes off the vector width.
 */
class FusedOpsTest {

    static void close(float[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], tol * Math.max(1, Math.abs(want[i])), what + " at " + i);
        }
    }

    @Property(tries = 30)
    void swigluMatchesTheScalarReferenceAndTheUnfusedOps(@ForAll @IntRange(min = 1, max = 40000) int n) {
        Random rnd = new Random(n);
        float[] a = uniform(rnd, n, -8, 8);
        float[] b = uniform(rnd, n, -2, 2);
        float[] dy = uniform(rnd, n, -1, 1);
        MemorySegment fast = zeros(n);
        MemorySegment ref = zeros(n);
        VectorOps.swigluForward(segment(a), segment(b), fast, n);
        CpuKernels.swigluForward(segment(a), segment(b), ref, n);
        close(floats(ref, n), floats(fast, n), 3e-6, "swiglu");
        // the unfused pair: silu then mul
        MemorySegment silu = zeros(n);
        MemorySegment unfused = zeros(n);
        CpuKernels.siluForward(segment(a), silu, n);
        VectorOps.binary(VectorOps.Op.MUL, silu, segment(b), unfused, n, n, false);
        assertArrayEquals(floats(unfused, n), floats(ref, n), "the reference rounds like silu then mul");

        MemorySegment da = zeros(n), db = zeros(n), rda = zeros(n), rdb = zeros(n);
        VectorOps.swigluBackward(segment(a), segment(b), segment(dy), da, db, n);
        CpuKernels.swigluBackward(segment(a), segment(b), segment(dy), rda, rdb, n);
        close(floats(rda, n), floats(da, n), 3e-6, "da");
        close(floats(rdb, n), floats(db, n), 3e-6, "db");
        // unfused backward: db = dy * silu(a), da = silu_grad(a, dy * b)
        MemorySegment t = zeros(n), uda = zeros(n), udb = zeros(n);
        VectorOps.binary(VectorOps.Op.MUL, segment(dy), silu, udb, n, n, false);
        VectorOps.binary(VectorOps.Op.MUL, segment(dy), segment(b), t, n, n, false);
        CpuKernels.siluBackward(segment(a), t, uda, n);
        assertArrayEquals(floats(udb, n), floats(rdb, n), "db as the unfused ops round it");
        assertArrayEquals(floats(uda, n), floats(rda, n), "da as the unfused ops round it");
    }

    @Property(tries = 40)
    void rmsNormMatchesTheScalarReference(@ForAll @IntRange(min = 1, max = 300) int rows,
                                          @ForAll @IntRange(min = 1, max = 131) int C) {
        Random rnd = new Random(rows * 1000L + C);
        int n = rows * C;
        float[] x = uniform(rnd, n, -3, 3);
        float[] w = uniform(rnd, C, 0.5, 1.5);
        float[] dy = uniform(rnd, n, -1, 1);
        MemorySegment fast = zeros(n), ref = zeros(n);
        FusedNorms.rmsNormForward(segment(x), segment(w), fast, rows, C, 1e-5f);
        CpuKernels.rmsNormForward(segment(x), segment(w), ref, rows, C, 1e-5f);
        close(floats(ref, n), floats(fast, n), 2e-6, "rms_norm");
        MemorySegment dx = zeros(n), dw = zeros(C), rdx = zeros(n), rdw = zeros(C);
        FusedNorms.rmsNormBackward(segment(x), segment(w), segment(dy), dx, dw, rows, C, 1e-5f);
        CpuKernels.rmsNormBackward(segment(x), segment(w), segment(dy), rdx, rdw, rows, C, 1e-5f, false);
        close(floats(rdx, n), floats(dx, n), 2e-5, "dx");
        close(floats(rdw, C), floats(dw, C), 2e-5 * Math.sqrt(rows), "dw");
    }

    @Property(tries = 40)
    void layerNormMatchesTheScalarReference(@ForAll @IntRange(min = 1, max = 300) int rows,
                                            @ForAll @IntRange(min = 1, max = 131) int C) {
        Random rnd = new Random(rows * 977L + C);
        int n = rows * C;
        float[] x = uniform(rnd, n, -3, 5);
        // Every row spans [-3, 5]: in a nearly constant row, x - mean cancels, and float kernels (this one,
        // PyTorch's) lose digits that the double reference keeps; that is float's limit, not the kernel's.
        for (int r = 0; r < rows && C >= 2; r++) {
            x[r * C] = -3;
            x[r * C + C - 1] = 5;
        }
        float[] w = uniform(rnd, C, 0.5, 1.5);
        float[] b = uniform(rnd, C, -0.5, 0.5);
        float[] dy = uniform(rnd, n, -1, 1);
        MemorySegment fast = zeros(n), ref = zeros(n);
        FusedNorms.layerNormForward(segment(x), segment(w), segment(b), fast, rows, C, 1e-5f);
        CpuKernels.layerNormForward(segment(x), segment(w), segment(b), ref, rows, C, 1e-5f);
        close(floats(ref, n), floats(fast, n), 1e-5, "layer_norm");
        MemorySegment dx = zeros(n), dw = zeros(C), db = zeros(C), rdx = zeros(n), rdw = zeros(C), rdb = zeros(C);
        FusedNorms.layerNormBackward(segment(x), segment(w), segment(dy), dx, dw, db, rows, C, 1e-5f);
        CpuKernels.layerNormBackward(segment(x), segment(w), segment(dy), rdx, rdw, rdb, rows, C, 1e-5f, false);
        close(floats(rdx, n), floats(dx, n), 5e-5, "dx");
        close(floats(rdw, C), floats(dw, C), 3e-5 * Math.sqrt(rows), "dw");
        close(floats(rdb, C), floats(db, C), 3e-5 * Math.sqrt(rows), "db");
    }

    @Property(tries = 30)
    void ropeWithALayoutChangeEqualsTheCopyThenTheRotation(@ForAll @IntRange(min = 1, max = 3) int B,
                                                            @ForAll @IntRange(min = 1, max = 5) int H,
                                                            @ForAll @IntRange(min = 1, max = 40) int T,
                                                            @ForAll @IntRange(min = 1, max = 21) int halfD,
                                                            @ForAll boolean inverse) {
        int D = 2 * halfD;
        int n = B * H * T * D;
        Random rnd = new Random(n + (inverse ? 1 : 0));
        float[] tokens = uniform(rnd, n, -2, 2);
        long[] pos = new long[B * T];
        for (int i = 0; i < pos.length; i++) {
            pos[i] = rnd.nextInt(3 * T);
        }
        // split: [B,T,H*D] -> [B,H,T,D], then rotate
        float[] heads = new float[n];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                for (int t = 0; t < T; t++) {
                    System.arraycopy(tokens, ((b * T + t) * H + h) * D, heads, ((b * H + h) * T + t) * D, D);
                }
            }
        }
        MemorySegment want = zeros(n);
        FusedRope.rope(segment(heads), want, B, H, T, D, 10000.0, inverse, ids(pos));
        MemorySegment got = zeros(n);
        FusedRope.rope(segment(tokens), true, got, false, B, H, T, D, 10000.0, inverse, ids(pos));
        assertArrayEquals(floats(want, n), floats(got, n), "split_heads_rope");
        // and back: rotate the heads, then merge, against merge_heads_rope
        MemorySegment rotated = zeros(n);
        FusedRope.rope(segment(heads), rotated, B, H, T, D, 10000.0, !inverse, ids(pos));
        float[] r = floats(rotated, n);
        float[] merged = new float[n];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                for (int t = 0; t < T; t++) {
                    System.arraycopy(r, ((b * H + h) * T + t) * D, merged, ((b * T + t) * H + h) * D, D);
                }
            }
        }
        MemorySegment back = zeros(n);
        FusedRope.rope(segment(heads), false, back, true, B, H, T, D, 10000.0, !inverse, ids(pos));
        assertArrayEquals(merged, floats(back, n), "merge_heads_rope");
    }

    /** The vector GELU (x sigmoid(2u), float) against the double tanh-form reference, with ragged tails. */
    @Property(tries = 30)
    void geluMatchesTheScalarReference(@ForAll @IntRange(min = 1, max = 40000) int n) {
        Random rnd = new Random(n);
        float[] x = uniform(rnd, n, -12, 12);
        MemorySegment fast = zeros(n);
        MemorySegment ref = zeros(n);
        VectorOps.geluTanhForward(segment(x), fast, n);
        CpuKernels.geluTanhForward(segment(x), ref, n);
        float[] r = floats(ref, n);
        float[] f = floats(fast, n);
        for (int i = 0; i < n; i++) {
            assertEquals(r[i], f[i], 2e-6 * Math.max(1, Math.abs(r[i])) + 1e-7, "gelu at " + i + " of x " + x[i]);
        }
    }
}
