package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import dev.collie.compiler.ops.OpRules;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Kernels for ops the compiler's fusion passes create. Each is checked against the unfused ops it
 * replaces (which stay in the compiler as the reference path).
 */
public final class FusedKernels {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
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
        // Shared: the GEMMs read the chunk from the pool's threads.
        try (Arena arena = Arena.ofShared()) {
            MemorySegment logits = arena.allocate(OpRules.headChunkRows(N, V) * V * 4, 64);
            return linearCrossEntropy(h, w, targets, dh, dw, N, C, V, ignoreIndex, logits);
        }
    }

    /**
     * {@link #linearCrossEntropy(MemorySegment, MemorySegment, MemorySegment, MemorySegment, MemorySegment, int, int,
     * int, long)} with the chunk of logits in {@code workspace}, whose size sets the chunk (at least one row of V
     * floats): the memory planner places it in the arena.
     */
    public static double linearCrossEntropy(MemorySegment h, MemorySegment w, MemorySegment targets, MemorySegment dh,
                                            MemorySegment dw, int N, int C, int V, long ignoreIndex,
                                            MemorySegment workspace) {
        return linearCrossEntropy(h, w, false, targets, dh, dw, N, C, V, ignoreIndex, workspace);
    }

    /** As above, with the weight {@code w} in bfloat16 when {@code wBf16} (widened as the GEMMs pack it). */
    public static double linearCrossEntropy(MemorySegment h, MemorySegment w, boolean wBf16, MemorySegment targets,
                                            MemorySegment dh, MemorySegment dw, int N, int C, int V, long ignoreIndex,
                                            MemorySegment workspace) {
        int count = CpuKernels.countTargets(targets, N, ignoreIndex);
        dw.asSlice(0, (long) V * C * 4).fill((byte) 0);
        if (count == 0) {
            dh.asSlice(0, (long) N * C * 4).fill((byte) 0);
            return 0;
        }
        int rows = (int) Math.min(N, workspace.byteSize() / ((long) V * 4));
        if (rows < 1) {
            throw new IllegalArgumentException("workspace of " + workspace.byteSize() + " bytes holds no row of " + V
                    + " logits");
        }
        double total = 0;
        MemorySegment logits = workspace;
        {
            // Chunks of balanced height: 2048 tokens go in four chunks of 512, not three of 524 and one of
            // 476. A chunk of at most SimdGemm's KC rows makes dW's product (K = the chunk's tokens) one K
            // slice, so the [V, C] gradient is read and written once per chunk instead of twice: the head
            // of 15m took 8% less time (paired runs).
            int chunks = (N + rows - 1) / rows;
            for (int t = 0; t < chunks; t++) {
                int start = (int) ((long) N * t / chunks);
                int n = (int) ((long) N * (t + 1) / chunks) - start;
                MemorySegment hChunk = h.asSlice((long) start * C * 4, (long) n * C * 4);
                MemorySegment tChunk = targets.asSlice((long) start * 8, (long) n * 8);
                if (wBf16) {
                    SimdGemm.matmulNTBf16(hChunk, w, logits, n, V, C, false);
                } else {
                    SimdGemm.matmulNT(hChunk, w, logits, n, V, C, false);
                }
                total += softmaxCrossEntropyRows(logits, tChunk, n, V, ignoreIndex, 1.0 / count);
                MemorySegment dhChunk = dh.asSlice((long) start * C * 4, (long) n * C * 4);
                if (wBf16) {
                    SimdGemm.matmulNNBf16(logits, w, dhChunk, n, C, V, false);
                } else {
                    SimdGemm.matmulNN(logits, w, dhChunk, n, C, V, false);
                }
                SimdGemm.matmulTN(logits, hChunk, dw, n, V, C, true);
            }
        }
        return total / count;
    }

    /** Receives rows of the head weight's gradient as they complete; the weight may change right after. */
    @FunctionalInterface
    public interface HeadGradientRows {
        /** @param grad rows {@code [firstRow, firstRow + rows)} of dW, {@code [rows, C]} floats */
        void accept(long firstRow, int rows, MemorySegment grad);
    }

    /**
     * The head of {@link #linearCrossEntropy(MemorySegment, MemorySegment, boolean, MemorySegment, MemorySegment,
     * MemorySegment, int, int, int, long, MemorySegment)} with W's update fused in: the same loss and dh, and W's
     * gradient handed to {@code update} instead of written to a [V, C] output.
     *
     * <p>When every row's logits fit the workspace ({@link OpRules#headUpdatesByTile}) the logits are computed
     * once for all N rows, dh = dlogits W is taken while W is intact, and then dW is computed a tile of
     * vocabulary rows at a time, {@code dW[tile] = dlogits[:, tile]^T h} (a TN product with the logits' row
     * stride), each tile handed over and its memory reused for the next: no [V, C] gradient exists. Otherwise
     * the tokens go in chunks as in linearCrossEntropy, dW is summed in the workspace and handed over whole.
     * Either way the gradient's bits are those of linearCrossEntropy's dW: each element is the same FMA chain
     * over the same tokens.
     *
     * @param workspace {@link OpRules#headUpdateWorkspaceFloats} floats
     */
    public static double linearCrossEntropyUpdate(MemorySegment h, MemorySegment w, boolean wBf16,
                                                  MemorySegment targets, MemorySegment dh, int N, int C, int V,
                                                  long ignoreIndex, MemorySegment workspace, HeadGradientRows update) {
        long need = OpRules.headUpdateWorkspaceFloats(N, V, C) * 4;
        if (workspace.byteSize() < need) {
            throw new IllegalArgumentException("workspace of " + workspace.byteSize() + " bytes, the fused head update needs "
                    + need);
        }
        long logitsBytes = OpRules.headChunkRows(N, V) * V * 4;
        MemorySegment logits = workspace.asSlice(0, logitsBytes);
        if (!OpRules.headUpdatesByTile(N, V)) {
            MemorySegment dw = workspace.asSlice(logitsBytes, (long) V * C * 4);
            double loss = linearCrossEntropy(h, w, wBf16, targets, dh, dw, N, C, V, ignoreIndex, logits);
            update.accept(0, V, dw);
            return loss;
        }
        int count = CpuKernels.countTargets(targets, N, ignoreIndex);
        double loss = 0;
        if (count == 0) {
            // No counted token: loss 0, dh 0, and a zero gradient (weight decay still applies).
            dh.asSlice(0, (long) N * C * 4).fill((byte) 0);
            logits.asSlice(0, (long) N * V * 4).fill((byte) 0);
        } else {
            // logits[N, V] = h W^T, then dlogits in place, then dh[N, C] = dlogits W with W intact
            if (wBf16) {
                SimdGemm.matmulNTBf16(h, w, logits, N, V, C, false);
            } else {
                SimdGemm.matmulNT(h, w, logits, N, V, C, false);
            }
            loss = softmaxCrossEntropyRows(logits, targets, N, V, ignoreIndex, 1.0 / count) / count;
            if (wBf16) {
                SimdGemm.matmulNNBf16(logits, w, dh, N, C, V, false);
            } else {
                SimdGemm.matmulNN(logits, w, dh, N, C, V, false);
            }
        }
        // Tiles of even height (at most HEAD_UPDATE_TILE_ROWS, at least half of it when V is larger): a
        // sliver of fewer rows than the GEMM's micro-tile would take its unpacked path, whose sums differ
        // in the last bits from the whole-gradient product.
        int tiles = (int) ((V + OpRules.HEAD_UPDATE_TILE_ROWS - 1) / OpRules.HEAD_UPDATE_TILE_ROWS);
        MemorySegment tile = workspace.asSlice(logitsBytes, Math.min(V, OpRules.HEAD_UPDATE_TILE_ROWS) * C * 4L);
        for (int t = 0; t < tiles; t++) {
            int v0 = (int) ((long) V * t / tiles);
            int vt = (int) ((long) V * (t + 1) / tiles) - v0;
            MemorySegment g = tile.asSlice(0, (long) vt * C * 4);
            // Accumulated into zeros, as linearCrossEntropy's dW is (0 + -0 gives +0: the same bits).
            g.fill((byte) 0);
            SimdGemm.matmulTN(logits.asSlice((long) v0 * 4), V, h, g, N, vt, C, true);
            update.accept(v0, vt, g);
        }
        return loss;
    }

    /**
     * A weight's gradient {@code dW[N, K] = dy[R, N]^T x[R, K]} handed to {@code update} block by block,
     * each applied by the receiver while it is in cache: the kernel of {@code matmul_tn_update}. With R
     * tokens within one GEMM slice ({@link SimdGemm#blocksFromKernel}, 1b and 7B at batch 1) the blocks
     * come straight from the GEMM's tasks ({@link SimdGemm#matmulTNBlocks}), so the updates run on every
     * thread and no workspace is needed. Otherwise bands of rows ({@link OpRules#weightUpdateBandRows})
     * are computed into the workspace one after another, each {@code dy[:, band]^T x}, a TN product with
     * dy's row stride. Either way each element is the FMA chain of {@link SimdGemm#matmulTN} over the
     * whole (the split of R alone decides it), so the bits equal the unfused product's. Bands have
     * balanced heights, at least half the band size, so none takes the GEMM's unpacked path.
     *
     * @param workspace {@code weightUpdateBandRows(N, K, R) * K} floats when the product goes by bands
     *                  (too small or null: the kernel allocates its own)
     */
    public static void weightGradientByBlocks(MemorySegment dy, MemorySegment x, int R, int N, int K,
                                              MemorySegment workspace, SimdGemm.BlockSink update) {
        if (SimdGemm.blocksFromKernel(R)) {
            SimdGemm.matmulTNBlocks(dy, x, R, N, K, update);
            return;
        }
        int maxRows = (int) OpRules.weightUpdateBandRows(N, K, R);
        long need = (long) maxRows * K * 4;
        if (workspace == null || workspace.byteSize() < need) {
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                weightGradientByBlocks(dy, x, R, N, K, arena.allocate(need, 64), update);
            }
            return;
        }
        int bands = (N + maxRows - 1) / maxRows;
        for (int t = 0; t < bands; t++) {
            int n0 = (int) ((long) N * t / bands);
            int rows = (int) ((long) N * (t + 1) / bands) - n0;
            MemorySegment band = workspace.asSlice(0, (long) rows * K * 4);
            SimdGemm.matmulTN(dy.asSlice((long) n0 * 4), N, x, band, R, rows, K, false);
            update.accept(n0, rows, 0, K, band, 0, K);
        }
    }

    /**
     * The gradient of an embedding table [V, C] looked up at {@code ids} [n], handed to {@code update} a block
     * of whole table rows at a time ({@link OpRules#embeddingUpdateBlockRows} rows, the last block shorter),
     * every row of the table exactly once, blocks on up to {@link OpRules#EMBEDDING_UPDATE_TASKS} threads. Row
     * r of a block is the sum of {@code dy[i]} over the positions i with {@code ids[i] == r}, added in
     * position order to zeros: the bits of {@link CpuKernels#embeddingBackward} into a zeroed table (rows no
     * id chose are zeros). Only the blocks exist, never the [V, C] gradient.
     *
     * @param ids       [n] int64, each in [0, V)
     * @param dy        [n, C]
     * @param workspace {@link OpRules#embeddingUpdateWorkspaceBytes} bytes (too small or null: the kernel
     *                  allocates its own)
     * @throws IllegalArgumentException for an id outside the table, before anything is handed over
     */
    public static void embeddingGradientByBlocks(MemorySegment ids, MemorySegment dy, int n, int C, int V,
                                                 MemorySegment workspace, SimdGemm.BlockSink update) {
        long need = OpRules.embeddingUpdateWorkspaceBytes(C);
        if (workspace == null || workspace.byteSize() < need) {
            try (Arena arena = Arena.ofShared()) {
                embeddingGradientByBlocks(ids, dy, n, C, V, arena.allocate(need, 64), update);
            }
            return;
        }
        // Positions ordered by id, then by position: key = id * n + position.
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            long id = ids.getAtIndex(I64, i);
            if (id < 0 || id >= V) {
                throw new IllegalArgumentException("id " + id + " at position " + i + " is outside the embedding table of "
                        + V + " rows");
            }
            keys[i] = id * n + i;
        }
        java.util.Arrays.sort(keys);
        int blockRows = (int) OpRules.embeddingUpdateBlockRows(C);
        int blocks = (V + blockRows - 1) / blockRows;
        int tasks = Math.min(Math.min(OpRules.EMBEDDING_UPDATE_TASKS, SimdGemm.defaultThreads()), blocks);
        long blockBytes = (long) blockRows * C * Float.BYTES;
        java.util.List<java.util.concurrent.ForkJoinTask<?>> jobs = new java.util.ArrayList<>(tasks);
        for (int t = 0; t < tasks; t++) {
            int b0 = (int) ((long) blocks * t / tasks);
            int b1 = (int) ((long) blocks * (t + 1) / tasks);
            MemorySegment block = workspace.asSlice(t * blockBytes, blockBytes);
            jobs.add(java.util.concurrent.ForkJoinTask.adapt(() -> {
                int first = b0 * blockRows;
                // the first key of a row at or after `first`
                int k = java.util.Arrays.binarySearch(keys, (long) first * n - 1);
                k = k >= 0 ? k + 1 : -k - 1;
                for (int b = b0; b < b1; b++) {
                    int r0 = b * blockRows;
                    int rows = Math.min(blockRows, V - r0);
                    MemorySegment grad = block.asSlice(0, (long) rows * C * Float.BYTES);
                    grad.fill((byte) 0);
                    for (; k < n && keys[k] / n < r0 + rows; k++) {
                        addRow(dy, (keys[k] % n) * C, grad, (keys[k] / n - r0) * C, C);
                    }
                    update.accept(r0, rows, 0, C, grad, 0, C);
                }
            }));
        }
        java.util.concurrent.ForkJoinTask.invokeAll(jobs);
    }

    /** {@code dst[d, d + C) += src[s, s + C)} (float indices), lane by lane. */
    private static void addRow(MemorySegment src, long s, MemorySegment dst, long d, int C) {
        int c = 0;
        for (int bound = S.loopBound(C); c < bound; c += S.length()) {
            long so = (s + c) * Float.BYTES;
            long dO = (d + c) * Float.BYTES;
            FloatVector.fromMemorySegment(S, dst, dO, ORDER).add(FloatVector.fromMemorySegment(S, src, so, ORDER))
                    .intoMemorySegment(dst, dO, ORDER);
        }
        for (; c < C; c++) {
            dst.setAtIndex(F32, d + c, dst.getAtIndex(F32, d + c) + src.getAtIndex(F32, s + c));
        }
    }

    /**
     * For each row of logits [n, V]: adds logsumexp - logit[target] to the returned sum and replaces
     * the row by its gradient (softmax - onehot) * scale; ignored rows become zeros and add nothing.
     * Vectorised: one pass for the max, one for exp (kept) and its sum, one to scale. Rows run in
     * parallel; the sum over rows is taken in row order, so the result does not depend on threads.
     */
    static double softmaxCrossEntropyRows(MemorySegment logits, MemorySegment targets, int n, int V, long ignoreIndex,
                                          double scale) {
        double[] rowLoss = new double[n];
        IntStream rows = IntStream.range(0, n);
        (n > 1 && (long) n * V > (1 << 16) ? rows.parallel() : rows).forEach(r -> {
            long base = (long) r * V * 4;
            long target = targets.getAtIndex(I64, r);
            MemorySegment row = logits.asSlice(base, (long) V * 4);
            if (target == ignoreIndex) {
                row.fill((byte) 0);
                return;
            }
            if (target < 0 || target >= V) {
                throw new IllegalArgumentException("target " + target + " at row " + r + " is outside the vocabulary of "
                        + V + " and is not the ignore index " + ignoreIndex);
            }
            int bound = S.loopBound(V);
            FloatVector vmax = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
            int i = 0;
            for (; i < bound; i += S.length()) {
                vmax = vmax.max(FloatVector.fromMemorySegment(S, row, (long) i * 4, ORDER));
            }
            float max = vmax.reduceLanes(VectorOperators.MAX);
            for (; i < V; i++) {
                max = Math.max(max, row.getAtIndex(F32, i));
            }
            float targetLogit = row.getAtIndex(F32, target);
            FloatVector vsum = FloatVector.zero(S);
            i = 0;
            for (; i < bound; i += S.length()) {
                FloatVector e = VectorMath.exp(FloatVector.fromMemorySegment(S, row, (long) i * 4, ORDER).sub(max));
                e.intoMemorySegment(row, (long) i * 4, ORDER);
                vsum = vsum.add(e);
            }
            // lanes in index order: reduceLanes(ADD) may associate differently once compiled, and a
            // resumed run (fresh JIT state) must reproduce the uninterrupted one bit for bit
            double sum = FusedNorms.laneSum(vsum);
            for (; i < V; i++) {
                float e = (float) Math.exp(row.getAtIndex(F32, i) - max);
                row.setAtIndex(F32, i, e);
                sum += e;
            }
            rowLoss[r] = Math.log(sum) + max - targetLogit;
            float k = (float) (scale / sum);
            i = 0;
            for (; i < bound; i += S.length()) {
                FloatVector.fromMemorySegment(S, row, (long) i * 4, ORDER).mul(k).intoMemorySegment(row, (long) i * 4, ORDER);
            }
            for (; i < V; i++) {
                row.setAtIndex(F32, i, row.getAtIndex(F32, i) * k);
            }
            row.setAtIndex(F32, target, row.getAtIndex(F32, target) - (float) scale);
        });
        double total = 0;
        for (double l : rowLoss) {
            total += l;
        }
        return total;
    }


}
