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

    /**
     * The head with its update fused in hands over, tile by tile, exactly linearCrossEntropy's dW (each
     * tile once, in order, covering every row) with its loss and dh, for vocabularies below, at and
     * across tile sizes, sometimes with every target ignored.
     */
    @Property(tries = 25)
    void fusedUpdateHandsOverLinearCrossEntropysGradientByTiles(@ForAll @IntRange(min = 1, max = 40) int n,
                                                                @ForAll @IntRange(min = 1, max = 33) int c,
                                                                @ForAll @IntRange(min = 2, max = 1400) int v,
                                                                @ForAll boolean bf16) {
        checkFusedUpdate(n, c, v, bf16, new Random(n * 131L + c * 17L + v));
    }

    /** Too many tokens for one chunk of logits: dW is summed over the chunks and handed over whole. */
    @org.junit.jupiter.api.Test
    void fusedUpdateOfMoreTokensThanOneChunkHandsOverTheWholeGradient() {
        int v = 4096;
        int n = (int) (dev.collie.compiler.ops.OpRules.HEAD_CHUNK_FLOATS / v) + 37;
        assertEquals(false, dev.collie.compiler.ops.OpRules.headUpdatesByTile(n, v));
        checkFusedUpdate(n, 5, v, false, new Random(5));
    }

    private static void checkFusedUpdate(int n, int c, int v, boolean bf16, Random rnd) {
        float[] h = uniform(rnd, n * c, -1, 1);
        float[] w = uniform(rnd, v * c, -1, 1);
        MemorySegment wSeg = segment(w);
        if (bf16) {
            // weights that are exactly bf16 values, stored as bf16 for the fused kernel
            MemorySegment packed = java.lang.foreign.Arena.ofAuto().allocate((long) v * c * 2, 64);
            for (int i = 0; i < w.length; i++) {
                short bits = (short) (Float.floatToRawIntBits(w[i]) >>> 16);
                packed.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, bits);
                w[i] = Float.intBitsToFloat(bits << 16);
            }
            wSeg = packed;
        }
        boolean none = rnd.nextInt(6) == 0;
        long[] t = new long[n];
        for (int i = 0; i < n; i++) {
            t[i] = none || rnd.nextInt(4) == 0 ? -100 : rnd.nextInt(v);
        }
        MemorySegment dhRef = zeros(n * c);
        MemorySegment dwRef = zeros(v * c);
        double lossRef = FusedKernels.linearCrossEntropy(segment(h), wSeg, bf16, ids(t), dhRef, dwRef, n, c, v, -100,
                zeros((int) (dev.collie.compiler.ops.OpRules.headChunkRows(n, v) * v)));

        MemorySegment dh = zeros(n * c);
        MemorySegment workspace = zeros((int) dev.collie.compiler.ops.OpRules.headUpdateWorkspaceFloats(n, v, c));
        float[] gathered = new float[v * c];
        java.util.Arrays.fill(gathered, Float.NaN);
        long[] next = {0};
        double loss = FusedKernels.linearCrossEntropyUpdate(segment(h), wSeg, bf16, ids(t), dh, n, c, v, -100,
                workspace, (first, rows, grad) -> {
                    assertEquals(next[0], first, "tiles arrive in order, each once");
                    assertEquals(true, rows >= Math.min(v, 6), "no sliver tile of " + rows + " rows");
                    for (int i = 0; i < rows * c; i++) {
                        gathered[(int) first * c + i] = grad.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i);
                    }
                    next[0] = first + rows;
                });
        assertEquals(v, next[0], "every row handed over");
        assertEquals(lossRef, loss, "loss");
        org.junit.jupiter.api.Assertions.assertArrayEquals(floats(dhRef, n * c), floats(dh, n * c), "dh");
        org.junit.jupiter.api.Assertions.assertArrayEquals(floats(dwRef, v * c), gathered, "dW");
    }

    /**
     * matmul_tn_update's kernel hands over, block by block, exactly the bits of the whole TN product:
     * random shapes, with up to 40 tokens (blocks straight from the GEMM's tasks, on both threads) and
     * with 513..700 (more than one GEMM slice: bands of rows from the workspace, widths up to 5000 so
     * that 4M-float bands hold few rows); every element once, and no sliver band.
     */
    @Property(tries = 30)
    void weightGradientBlocksAreTheWholeProducts(@ForAll @IntRange(min = 1, max = 700) int n,
                                                 @ForAll @IntRange(min = 1, max = 5000) int k,
                                                 @ForAll @IntRange(min = 1, max = 40) int fewTokens,
                                                 @ForAll boolean manyTokens) {
        int r = manyTokens ? 512 + fewTokens * 4 : fewTokens;
        if (manyTokens) {
            k = 1 + k / 8;
        }
        Random rnd = new Random(31L * n + k + 7L * r);
        float[] dy = uniform(rnd, r * n, -1, 1);
        float[] x = uniform(rnd, r * k, -1, 1);
        MemorySegment whole = zeros(n * k);
        SimdGemm.matmulTN(segment(dy), segment(x), whole, r, n, k, false);
        long band = dev.collie.compiler.ops.OpRules.weightUpdateBandRows(n, k, r);
        // without a workspace the kernel allocates its own (shared: the GEMM's threads write it)
        MemorySegment workspace = rnd.nextInt(3) == 0 ? null : zeros((int) (band * k));
        float[] gathered = new float[n * k];
        java.util.Arrays.fill(gathered, Float.NaN);
        java.util.concurrent.atomic.AtomicLong handed = new java.util.concurrent.atomic.AtomicLong();
        final int width = k;
        FusedKernels.weightGradientByBlocks(segment(dy), segment(x), r, n, k, workspace,
                (row0, rows, col0, cols, grad, offset, ld) -> {
                    if (manyTokens) {
                        assertEquals(true, col0 == 0 && cols == width && (rows == n || rows >= Math.max(6, band / 2)),
                                "bands of whole rows, " + rows + " of " + band);
                    }
                    for (int i = 0; i < rows; i++) {
                        for (int j = 0; j < cols; j++) {
                            int at = (row0 + i) * width + col0 + j;
                            assertEquals(true, Float.isNaN(gathered[at]), "element " + at + " handed over twice");
                            gathered[at] = grad.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, offset + i * ld + j);
                        }
                    }
                    handed.addAndGet((long) rows * cols);
                });
        assertEquals((long) n * k, handed.get(), "every element handed over");
        org.junit.jupiter.api.Assertions.assertArrayEquals(floats(whole, n * k), gathered, "dW");
    }

    /**
     * The fused embedding update's gradient blocks are the dense embedding gradient: every table row handed
     * over exactly once, in whole rows, as blocks of at most the planned size, each row the same sum as
     * {@link CpuKernels#embeddingBackward} (to the bit), rows no id chose zeros. Tables from 1 row to more
     * than a block, widths that are not multiples of the vector width, many repeated ids.
     */
    @Property(tries = 40)
    void embeddingGradientBlocksAreTheDenseGradient(@ForAll @IntRange(min = 1, max = 300) int n,
                                                    @ForAll @IntRange(min = 1, max = 3000) int vocab,
                                                    @ForAll @IntRange(min = 1, max = 700) int width,
                                                    @ForAll boolean fewIds) {
        Random rnd = new Random(17L * n + 31L * vocab + width);
        long[] tokens = new long[n];
        for (int i = 0; i < n; i++) {
            tokens[i] = rnd.nextInt(fewIds ? Math.min(vocab, 3) : vocab);
        }
        float[] dy = uniform(rnd, n * width, -1, 1);
        MemorySegment dense = zeros(vocab * width);
        CpuKernels.embeddingBackward(ids(tokens), segment(dy), dense, n, width);
        int blockRows = (int) dev.collie.compiler.ops.OpRules.embeddingUpdateBlockRows(width);
        MemorySegment workspace = rnd.nextInt(3) == 0 ? null
                : zeros((int) (dev.collie.compiler.ops.OpRules.embeddingUpdateWorkspaceBytes(width) / 4));
        float[] gathered = new float[vocab * width];
        java.util.Arrays.fill(gathered, Float.NaN);
        java.util.concurrent.atomic.AtomicLong handed = new java.util.concurrent.atomic.AtomicLong();
        FusedKernels.embeddingGradientByBlocks(ids(tokens), segment(dy), n, width, vocab, workspace,
                (row0, rows, col0, cols, grad, offset, ld) -> {
                    assertEquals(true, col0 == 0 && cols == width && ld == width && rows >= 1 && rows <= blockRows,
                            "whole rows, at most a block");
                    synchronized (gathered) {
                        for (int i = 0; i < rows; i++) {
                            for (int j = 0; j < cols; j++) {
                                int at = (row0 + i) * width + j;
                                assertEquals(true, Float.isNaN(gathered[at]), "element " + at + " handed over twice");
                                gathered[at] = grad.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, offset + i * ld + j);
                            }
                        }
                    }
                    handed.addAndGet((long) rows * cols);
                });
        assertEquals((long) vocab * width, handed.get(), "every row handed over");
        org.junit.jupiter.api.Assertions.assertArrayEquals(floats(dense, vocab * width), gathered, "dE");
    }

    @org.junit.jupiter.api.Test
    void anIdOutsideTheTableIsAnErrorBeforeAnyBlockIsHandedOver() {
        float[] dy = uniform(new Random(3), 3 * 8, -1, 1);
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> FusedKernels.embeddingGradientByBlocks(ids(new long[] {1, 12, 2}), segment(dy), 3, 8, 12, null,
                        (row0, rows, col0, cols, grad, offset, ld) -> {
                            throw new AssertionError("a block was handed over");
                        }));
        assertEquals("id 12 at position 1 is outside the embedding table of 12 rows", e.getMessage());
    }
}
