package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Kernels for ops the compiler's fusion passes create. Each is checked against the unfused ops it
 * replaces (which stay in the compiler as the reference path).
 */
public final class FusedKernels {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;
    /** Logit floats per chunk: ~8 MB, so a 32k vocabulary is processed 64 tokens at a time. */
    static final long CHUNK_FLOATS = 2L << 20;

    private FusedKernels() {}

    /**
     * Output projection and mean cross-entropy in token chunks, with the gradients of d(loss) = 1:
     * for each chunk of rows, logits = h W^T, loss += logsumexp - logit[target],
     * dlogits = (softmax - onehot) / count, dh = dlogits W, dW += dlogits^T h. Only one chunk of
     * logits exists at a time. Rows whose target is {@code ignoreIndex} count for nothing.
     *
     * @param h       [N, C]
     * @param w       [V, C]
     * @param targets [N] int64
     * @param dh      [N, C] written
     * @param dw      [V, C] written
     * @return the mean loss over counted rows (0 when none counts)
     */
    public static double linearCrossEntropy(MemorySegment h, MemorySegment w, MemorySegment targets, MemorySegment dh,
                                            MemorySegment dw, int N, int C, int V, long ignoreIndex) {
        int count = CpuKernels.countTargets(targets, N, ignoreIndex);
        dw.asSlice(0, (long) V * C * 4).fill((byte) 0);
        if (count == 0) {
            dh.asSlice(0, (long) N * C * 4).fill((byte) 0);
            return 0;
        }
        int rows = (int) Math.max(1, Math.min(N, CHUNK_FLOATS / V));
        double total = 0;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment logits = arena.allocate((long) rows * V * 4, 64);
            for (int start = 0; start < N; start += rows) {
                int n = Math.min(rows, N - start);
                MemorySegment hChunk = h.asSlice((long) start * C * 4, (long) n * C * 4);
                MemorySegment tChunk = targets.asSlice((long) start * 8, (long) n * 8);
                CpuKernels.matmulNT(hChunk, w, logits, n, V, C, false);
                // loss of the chunk as a sum: the kernel returns a mean over its counted rows
                int chunkCount = CpuKernels.countTargets(tChunk, n, ignoreIndex);
                if (chunkCount > 0) {
                    total += CpuKernels.crossEntropyForward(logits, tChunk, n, V, ignoreIndex) * chunkCount;
                }
                // dlogits in place: (softmax - onehot) / count, zero for ignored rows
                CpuKernels.crossEntropyBackward(logits, tChunk, logits, n, V, ignoreIndex, (float) chunkCount / count);
                CpuKernels.matmulNN(logits, w, dh.asSlice((long) start * C * 4, (long) n * C * 4), n, C, V, false);
                CpuKernels.matmulTN(logits, hChunk, dw, n, V, C, true);
            }
        }
        return total / count;
    }


}
