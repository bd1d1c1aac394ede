package dev.collie.runtime.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Flash-attention style scaled dot-product attention on the CPU, with the semantics of
 * {@link CpuKernels#attentionForward} and {@link CpuKernels#attentionBackward}: grouped-query heads
 * (query head h reads kv head {@code h / (H / KV)}), optional causal mask, optional int64 segment
 * ids [B,T] (a query sees only keys of its own segment), scores {@code q·k * scale}.
 *
 * <p>Queries are processed in tiles of {@link #BR} rows against key tiles of {@link #BC} columns.
 * Scores exist only one tile at a time (never T×T), the softmax is computed online (running max and
 * sum per query row) and key tiles entirely above the causal diagonal, or whose segment ids cannot
 * match the query tile's, are skipped. Every product inside a tile is a small register-blocked
 * matrix product on heap tiles, vectorised along its output row, so no horizontal reductions sit in
 * inner loops and head sizes that are not a multiple of the vector width are handled by zero
 * padding rather than scalar tails.
 *
 * <p>Work is split by whole (batch, head) pairs in the forward and whole (batch, kv head) pairs in
 * the backward; each output element is written by exactly one task with a fixed summation order, so
 * results are bit-identical whatever the thread count. They are not bit-identical to the scalar
 * reference: fused multiply-adds and tile-wise softmax round differently (about 1e-6 relative).
 *
 * <p>Tensors are contiguous row-major float32 segments in native byte order, as in
 * {@link CpuKernels}; {@code lse} is float32 [B,H,T]. {@link #forward} and {@link #backward} take
 * head-major [B,H,T,D] tensors. {@link #forwardTokenMajor} and {@link #backwardTokenMajor} take the
 * projections' own token-major [B,T,H*D] layout and may apply the rotary embedding to q and k as
 * they are loaded (and its inverse to dq and dk as they are stored): the compiler's
 * {@code rotary_attention}, which leaves no head-major copy of q, k, v, the output or their
 * gradients anywhere. Both forms share every tile step, so they give the same bits as the layout
 * change and the rotation ({@link FusedRope}) done separately around the head-major form.
 */
public final class FlashAttention {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int L = SPECIES.length();
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;

    /**
     * Query rows per tile. With BC it sets the score tile (BR×BC floats, 16 KiB at 64×64), which
     * should stay in L1 next to the key/value panel it is multiplied with. On a 32 KiB-L1 Zen 3
     * (AVX2) at D = 48 and 64, 64×64 was as fast as 64×48 and 64×96 and 5-10% faster than 32×32,
     * 32×64, 128×64 and 64×128: smaller tiles pay more per-row softmax overhead, larger ones
     * leave L1.
     */
    static final int BR = 64;

    /** Key columns per tile; a multiple of the vector width (and of 4, the micro-kernel height). */
    static final int BC = roundUp(64, Math.max(L, 4));

    /** Rows of the micro-kernel's register block; tiles are padded to a multiple of it. */
    private static final int MR = 4;

    /**
     * Vectors per register-block row: 4×4 accumulators fit the 32 registers of AVX-512, while the
     * 16 registers of AVX2 take 4×3 (12 accumulators, 3 loaded vectors and one broadcast).
     */
    private static final int MAX_NV = L >= 16 ? 4 : 3;

    /** Below roughly this many multiply-adds, forking tasks costs more than it saves. */
    private static final long PARALLEL_THRESHOLD = 1L << 18;

    /**
     * Scratch not in use, grown on demand and reused across calls, so that a task does not
     * allocate and zero its key/value panels (six [T, D] float arrays in the backward). Each task
     * initialises everything it reads, so stale contents never reach a result. Shared by all
     * threads, a task taking one and giving it back (see {@link #withWorkspace}): per-thread
     * scratch became garbage with every pool thread that retired.
     */
    private static final ConcurrentLinkedDeque<Workspace> WORKSPACE = new ConcurrentLinkedDeque<>();

    /** Runs {@code task} with a workspace taken from {@link #WORKSPACE}, then gives it back. */
    private static void withWorkspace(java.util.function.Consumer<Workspace> task) {
        Workspace w = WORKSPACE.pollFirst();
        if (w == null) {
            w = new Workspace();
        }
        try {
            task.accept(w);
        } finally {
            WORKSPACE.offerFirst(w);
        }
    }

    private FlashAttention() {
    }

    // ---------------------------------------------------------------------------------------
    // Public API
    // ---------------------------------------------------------------------------------------

    /** {@link #forward(MemorySegment, MemorySegment, MemorySegment, MemorySegment, int, int, int, int, int, boolean, float, MemorySegment, MemorySegment) forward} without {@code lse}. */
    public static void forward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                               int B, int H, int KV, int T, int D, boolean causal, float scale,
                               MemorySegment segments) {
        forward(q, k, v, out, B, H, KV, T, D, causal, scale, segments, null);
    }

    /**
     * {@code out = softmax(q k^T * scale + mask) v}.
     *
     * @param q        [B,H,T,D]
     * @param k        [B,KV,T,D]
     * @param v        [B,KV,T,D]
     * @param out      [B,H,T,D]; overwritten
     * @param causal   mask keys u > t for query t
     * @param scale    score multiplier, usually {@code 1/sqrt(D)}
     * @param segments [B,T] int64 segment ids, or null
     * @param lse      [B,H,T] float32, or null: receives {@code log Σ_u exp(score_tu)} per query row,
     *                 which {@link #backward} uses instead of recomputing the normaliser
     * @throws IllegalArgumentException if KV does not divide H or a size is not positive
     */
    public static void forward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                               int B, int H, int KV, int T, int D, boolean causal, float scale,
                               MemorySegment segments, MemorySegment lse) {
        int group = checkShape(B, H, KV, T, D);
        parallelFor(B * H, (long) B * H * T * T * D, bh ->
                withWorkspace(ws -> forwardHead(q, k, v, out, lse, segments, bh / H, bh % H, H, KV, group, T, D, causal, scale,
                        Layout.HEAD_MAJOR, ws)));
    }

    /**
     * Backward of {@link #forward}, FlashAttention-2 style: per kv head, probabilities are
     * recomputed tile by tile from q, k and the log-sum-exp, then {@code dV += P^T dO},
     * {@code dP = dO V^T}, {@code dS = P ∘ (dP − Di)} with {@code Di = rowsum(dO ∘ O)},
     * {@code dQ = scale · dS K} and {@code dK += scale · dS^T Q}. dk and dv sum over the H/KV query
     * heads sharing a kv head, in head order.
     *
     * @param out  [B,H,T,D] the forward's output (for Di)
     * @param dout [B,H,T,D]
     * @param dq   [B,H,T,D]; overwritten
     * @param dk   [B,KV,T,D]; overwritten
     * @param dv   [B,KV,T,D]; overwritten
     * @param lse  [B,H,T] from {@link #forward}, or null to recompute it (one more q·k pass)
     * @throws IllegalArgumentException if KV does not divide H or a size is not positive
     */
    public static void backward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                                MemorySegment dout, MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                int B, int H, int KV, int T, int D, boolean causal, float scale,
                                MemorySegment segments, MemorySegment lse) {
        int group = checkShape(B, H, KV, T, D);
        parallelFor(B * KV, 5L * B * H * T * T * D, bkv ->
                withWorkspace(ws -> backwardKvHead(q, k, v, out, dout, dq, dk, dv, lse, segments, bkv / KV, bkv % KV,
                        H, KV, group, T, D, causal, scale, Layout.HEAD_MAJOR, ws)));
    }

    /**
     * The rotary embedding that the token-major forms apply to q and k on load: the rotation of
     * {@link FusedRope} (Hugging Face {@code rotate_half}, its cached cos/sin table, the same float
     * products), so that results equal {@code FusedRope.rope} followed by the head-major kernel.
     *
     * @param theta     base of the inverse frequencies, {@code 1 / theta^(2j/D)}
     * @param positions [B,T] int64 position of each token, or null for its index t
     */
    public record Rotary(double theta, MemorySegment positions) {
    }

    /**
     * {@link #forward} on token-major tensors, optionally rotating q and k as they are loaded:
     * {@code out = softmax(rot(q) rot(k)^T * scale + mask) v}.
     *
     * @param q      [B,T,H*D]
     * @param k      [B,T,KV*D]
     * @param v      [B,T,KV*D]
     * @param out    [B,T,H*D]; overwritten
     * @param lse    [B,H,T] float32 (head-major, as in {@link #forward}), or null
     * @param rotary the rotation of q and k, or null for none
     * @throws IllegalArgumentException as {@link #forward}, or if D is odd or a position out of
     *                                  range with a rotation
     */
    public static void forwardTokenMajor(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                                         int B, int H, int KV, int T, int D, boolean causal, float scale,
                                         MemorySegment segments, MemorySegment lse, Rotary rotary) {
        int group = checkShape(B, H, KV, T, D);
        Layout layout = Layout.tokenMajor(rotary, B, T, D);
        parallelFor(B * H, (long) B * H * T * T * D, bh ->
                withWorkspace(ws -> forwardHead(q, k, v, out, lse, segments, bh / H, bh % H, H, KV, group, T, D, causal, scale, layout, ws)));
    }

    /**
     * {@link #backward} on token-major tensors: q and k are rotated on load as in
     * {@link #forwardTokenMajor}, and dq and dk receive the inverse rotation on store, so they are
     * the gradients of the unrotated projections.
     *
     * @param out  [B,T,H*D] the forward's output
     * @param dout [B,T,H*D]
     * @param dq   [B,T,H*D]; overwritten
     * @param dk   [B,T,KV*D]; overwritten
     * @param dv   [B,T,KV*D]; overwritten
     * @param lse  [B,H,T] from {@link #forwardTokenMajor}, or null to recompute it
     */
    public static void backwardTokenMajor(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                                          MemorySegment dout, MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                          int B, int H, int KV, int T, int D, boolean causal, float scale,
                                          MemorySegment segments, MemorySegment lse, Rotary rotary) {
        int group = checkShape(B, H, KV, T, D);
        Layout layout = Layout.tokenMajor(rotary, B, T, D);
        parallelFor(B * KV, 5L * B * H * T * T * D, bkv ->
                withWorkspace(ws -> backwardKvHead(q, k, v, out, dout, dq, dk, dv, lse, segments, bkv / KV, bkv % KV,
                        H, KV, group, T, D, causal, scale, layout, ws)));
    }

    // ---------------------------------------------------------------------------------------
    // Forward
    // ---------------------------------------------------------------------------------------

    private static void forwardHead(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                                    MemorySegment lse, MemorySegment segments, int b, int h, int H, int KV,
                                    int group, int T, int D, boolean causal, float scale, Layout layout, Workspace pooled) {
        int dp = roundUp(D, L);
        Workspace w = pooled.ensure(T, D, dp, false);
        long kvBase = layout.base(b, h / group, KV, T, D);
        long kvStride = layout.stride(KV, D);
        long qBase = layout.base(b, h, H, T, D);
        long qStride = layout.stride(H, D);
        layout.loadPositions(b, T, D, w);
        loadTransposedTiles(k, kvBase, kvStride, T, D, w.kt, w.raw, layout, w);
        loadPadded(v, kvBase, kvStride, T, D, dp, w.vp);
        boolean masked = loadSegments(segments, b, T, w);

        for (int i0 = 0; i0 < T; i0 += BR) {
            int rows = Math.min(BR, T - i0);
            int rowsPad = roundUp(rows, MR);
            loadQueryTile(q, qBase, qStride, i0, rows, rowsPad, D, dp, scale, w.q, layout, w);
            Arrays.fill(w.m, 0, rowsPad, Float.NEGATIVE_INFINITY);
            Arrays.fill(w.l, 0, rowsPad, 0f);
            Arrays.fill(w.o, 0, rowsPad * dp, 0f);
            int lastKey = causal ? i0 + rows - 1 : T - 1;
            for (int j0 = 0; j0 <= lastKey; j0 += BC) {
                if (masked && segmentsDisjoint(w, i0, rows, j0)) {
                    continue;
                }
                int cols = Math.min(BC, T - j0);
                scoreTile(w, i0, rows, rowsPad, j0, cols, D, causal, masked);
                onlineSoftmax(w, rows, rowsPad, dp, true);
                // O += P V, each row block stopping at the last key it can see.
                for (int r = 0; r < rowsPad; r += MR) {
                    int keys = w.keyEnd[r / MR];
                    if (keys > 0) {
                        rowBlock(w.s, r * BC, BC, 1, w.vp, j0 * dp, dp, w.o, r * dp, dp, dp, keys, true);
                    }
                }
            }
            for (int r = 0; r < rows; r++) {
                float l = w.l[r];
                // Every query sees at least itself, so l > 0; the guard only keeps a degenerate
                // (externally produced) mask from turning into NaN.
                float inv = l > 0f ? 1f / l : 0f;
                scaleRow(w.o, r * dp, dp, inv);
                if (lse != null) {
                    float value = l > 0f ? (float) (w.m[r] + Math.log(l)) : Float.POSITIVE_INFINITY;
                    lse.setAtIndex(F32, ((long) b * H + h) * T + i0 + r, value);
                }
            }
            storeRows(w.o, out, qBase, qStride, i0, rows, D, dp);
        }
    }

    /**
     * Folds the score tile {@code w.s} into the running max/sum of each row and replaces it with
     * {@code exp(s - m_new)}. With {@code rescaleOutput}, the accumulated output rows are
     * multiplied by {@code exp(m_old - m_new)} so that they stay relative to the new max.
     * Only the columns the score product computed ({@code colEnd}) are read and written; the
     * products after it stop at the same column.
     */
    private static void onlineSoftmax(Workspace w, int rows, int rowsPad, int dp, boolean rescaleOutput) {
        float[] s = w.s;
        for (int r = 0; r < rows; r++) {
            int off = r * BC;
            int n = w.colEnd[r / MR];
            if (n == 0) {
                continue;
            }
            FloatVector mx = FloatVector.fromArray(SPECIES, s, off);
            for (int c = L; c < n; c += L) {
                mx = mx.max(FloatVector.fromArray(SPECIES, s, off + c));
            }
            float mOld = w.m[r];
            float mNew = Math.max(mOld, mx.reduceLanes(VectorOperators.MAX));
            if (mNew == Float.NEGATIVE_INFINITY) {
                // Nothing visible in this row yet: a zero row leaves the accumulators untouched.
                Arrays.fill(s, off, off + n, 0f);
                continue;
            }
            FloatVector neg = FloatVector.broadcast(SPECIES, -mNew);
            FloatVector sum = FloatVector.zero(SPECIES);
            for (int c = 0; c < n; c += L) {
                FloatVector p = exp(FloatVector.fromArray(SPECIES, s, off + c).add(neg));
                p.intoArray(s, off + c);
                sum = sum.add(p);
            }
            // Once a row has seen its largest score, later tiles rarely raise it: skip the call.
            float alpha = mOld == mNew ? 1f : (float) Math.exp((double) mOld - mNew);
            sum.intoArray(w.lanes, 0);
            w.l[r] = w.l[r] * alpha + sumLanes(w.lanes);
            w.m[r] = mNew;
            if (rescaleOutput && alpha != 1f) {
                scaleRow(w.o, r * dp, dp, alpha);
            }
        }
        // Padding rows take part in the register-blocked products; zeros keep them inert.
        Arrays.fill(s, rows * BC, rowsPad * BC, 0f);
    }

    // ---------------------------------------------------------------------------------------
    // Backward
    // ---------------------------------------------------------------------------------------

    private static void backwardKvHead(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                                       MemorySegment dout, MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                       MemorySegment lse, MemorySegment segments, int b, int kvHead, int H, int KV,
                                       int group, int T, int D, boolean causal, float scale, Layout layout, Workspace pooled) {
        int dp = roundUp(D, L);
        int tp = roundUp(T, BC);
        Workspace w = pooled.ensure(T, D, dp, true);
        long kvBase = layout.base(b, kvHead, KV, T, D);
        long kvStride = layout.stride(KV, D);
        long qStride = layout.stride(H, D);
        layout.loadPositions(b, T, D, w);
        // k (rotated) once into w.raw, from which both of its tile forms are made; then v.
        loadTransposedTiles(k, kvBase, kvStride, T, D, w.kt, w.raw, layout, w);
        padRows(w.raw, T, D, dp, w.kp);
        loadTransposedTiles(v, kvBase, kvStride, T, D, w.vt, w.raw, null, w);
        boolean masked = loadSegments(segments, b, T, w);
        Arrays.fill(w.dka, 0, tp * dp, 0f);
        Arrays.fill(w.dva, 0, tp * dp, 0f);

        for (int g = 0; g < group; g++) {
            int h = kvHead * group + g;
            long qBase = layout.base(b, h, H, T, D);
            long lseBase = ((long) b * H + h) * T;
            for (int i0 = 0; i0 < T; i0 += BR) {
                int rows = Math.min(BR, T - i0);
                int rowsPad = roundUp(rows, MR);
                int lastKey = causal ? i0 + rows - 1 : T - 1;
                loadQueryTile(q, qBase, qStride, i0, rows, rowsPad, D, dp, scale, w.q, layout, w);
                loadRows(dout, qBase, qStride, i0, rows, rowsPad, D, dp, w.dO);
                loadRows(out, qBase, qStride, i0, rows, rowsPad, D, dp, w.o);
                for (int r = 0; r < rowsPad; r++) {
                    w.di[r] = dotRow(w.dO, w.o, r * dp, dp, w.lanes);
                }
                if (lse != null) {
                    MemorySegment.copy(lse, F32, (lseBase + i0) * 4, w.lse, 0, rows);
                } else {
                    recomputeLse(w, i0, rows, rowsPad, lastKey, T, D, causal, masked);
                }
                // exp(s - inf) = 0 makes padding rows vanish from dV and dK.
                Arrays.fill(w.lse, rows, rowsPad, Float.POSITIVE_INFINITY);
                Arrays.fill(w.dq, 0, rowsPad * dp, 0f);

                for (int j0 = 0; j0 <= lastKey; j0 += BC) {
                    if (masked && segmentsDisjoint(w, i0, rows, j0)) {
                        continue;
                    }
                    int cols = Math.min(BC, T - j0);
                    scoreTile(w, i0, rows, rowsPad, j0, cols, D, causal, masked);
                    probabilities(w, rowsPad);
                    // dP = dO V^T from the transposed value tile, over the columns each row
                    // block can see; then dS in place of dP.
                    for (int r = 0; r < rowsPad; r += MR) {
                        int n = w.colEnd[r / MR];
                        if (n > 0) {
                            rowBlock(w.dO, r * dp, dp, 1, w.vt, j0 * D, BC, w.ds, r * BC, BC, n, D, false);
                        }
                    }
                    softmaxGradient(w, rowsPad);
                    // dQ += dS K (times scale on the way out).
                    for (int r = 0; r < rowsPad; r += MR) {
                        int keys = w.keyEnd[r / MR];
                        if (keys > 0) {
                            rowBlock(w.ds, r * BC, BC, 1, w.kp, j0 * dp, dp, w.dq, r * dp, dp, dp, keys, true);
                        }
                    }
                    // dV[u] += P^T dO and dK[u] += dS^T (scale q): P and dS are read transposed
                    // (row stride 1, column stride BC), from the first query row that sees key u.
                    for (int c = 0; c < cols; c += MR) {
                        int first = causal ? Math.max(0, j0 + c - i0) : 0;
                        if (first >= rows) {
                            break;
                        }
                        int a = c + first * BC;
                        int kv = (j0 + c) * dp;
                        rowBlock(w.s, a, 1, BC, w.dO, first * dp, dp, w.dva, kv, dp, dp, rows - first, true);
                        rowBlock(w.ds, a, 1, BC, w.q, first * dp, dp, w.dka, kv, dp, dp, rows - first, true);
                    }
                }
                scaleRow(w.dq, 0, rows * dp, scale);
                // The gradient of the unrotated q is the inverse rotation of that of the rotated one.
                layout.rotate(w.dq, dp, i0, rows, D, true, w);
                storeRows(w.dq, dq, qBase, qStride, i0, rows, D, dp);
            }
        }
        layout.rotate(w.dka, dp, 0, T, D, true, w);
        storeRows(w.dka, dk, kvBase, kvStride, 0, T, D, dp);
        storeRows(w.dva, dv, kvBase, kvStride, 0, T, D, dp);
    }

    /** The forward's online softmax without the output: leaves {@code m + log l} in {@code w.lse}. */
    private static void recomputeLse(Workspace w, int i0, int rows, int rowsPad, int lastKey, int T, int D,
                                     boolean causal, boolean masked) {
        Arrays.fill(w.m, 0, rowsPad, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.l, 0, rowsPad, 0f);
        for (int j0 = 0; j0 <= lastKey; j0 += BC) {
            if (masked && segmentsDisjoint(w, i0, rows, j0)) {
                continue;
            }
            scoreTile(w, i0, rows, rowsPad, j0, Math.min(BC, T - j0), D, causal, masked);
            onlineSoftmax(w, rows, rowsPad, 0, false);
        }
        for (int r = 0; r < rows; r++) {
            float l = w.l[r];
            w.lse[r] = l > 0f ? (float) (w.m[r] + Math.log(l)) : Float.POSITIVE_INFINITY;
        }
    }

    /**
     * {@code s = exp(s - lse_row)}: the normalised probabilities, masked scores becoming 0, over
     * the computed columns; zero after them.
     */
    private static void probabilities(Workspace w, int rowsPad) {
        float[] s = w.s;
        for (int r = 0; r < rowsPad; r++) {
            int off = r * BC;
            int n = w.colEnd[r / MR];
            FloatVector neg = FloatVector.broadcast(SPECIES, -w.lse[r]);
            for (int c = 0; c < n; c += L) {
                exp(FloatVector.fromArray(SPECIES, s, off + c).add(neg)).intoArray(s, off + c);
            }
            Arrays.fill(s, off + n, off + BC, 0f);
        }
    }

    /**
     * {@code ds = p ∘ (dp − Di)}, in place over the dP tile; zero past the columns whose dP was
     * computed (where p is 0 anyway).
     */
    private static void softmaxGradient(Workspace w, int rowsPad) {
        float[] s = w.s;
        float[] ds = w.ds;
        for (int r = 0; r < rowsPad; r++) {
            int off = r * BC;
            int n = w.colEnd[r / MR];
            FloatVector di = FloatVector.broadcast(SPECIES, w.di[r]);
            for (int c = 0; c < n; c += L) {
                FloatVector p = FloatVector.fromArray(SPECIES, s, off + c);
                p.mul(FloatVector.fromArray(SPECIES, ds, off + c).sub(di)).intoArray(ds, off + c);
            }
            Arrays.fill(ds, off + n, off + BC, 0f);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Shared tile steps
    // ---------------------------------------------------------------------------------------

    /**
     * {@code w.s = (scale q)[i0.., :] · k[j0.., :]^T} for one tile, then -inf where a key is
     * invisible: past T, after the query (causal), or in another segment. Tiles needing no mask
     * (all of them below the diagonal without segments) skip the scalar masking pass.
     *
     * <p>Also records, per block of {@link #MR} rows, how many keys its last row can see
     * ({@code keyEnd}) and that count rounded up to whole vectors ({@code colEnd}): on a causal
     * diagonal tile the products then stop at the diagonal instead of computing a full square
     * that is mostly masked (at T = 256 with 64-wide tiles, 25% of all work).
     */
    private static void scoreTile(Workspace w, int i0, int rows, int rowsPad, int j0, int cols, int D,
                                  boolean causal, boolean masked) {
        int dp = roundUp(D, L);
        for (int r = 0; r < rowsPad; r += MR) {
            int keys = causal ? Math.clamp(i0 + r + MR - j0, 0, cols) : cols;
            w.keyEnd[r / MR] = keys;
            w.colEnd[r / MR] = roundUp(keys, L);
            if (keys > 0) {
                rowBlock(w.q, r * dp, dp, 1, w.kt, j0 * D, BC, w.s, r * BC, BC, roundUp(keys, L), D, false);
            }
        }
        boolean causalCut = causal && j0 + cols - 1 > i0;
        boolean segmentCut = masked && !segmentsUniform(w, i0, rows, j0);
        if (cols == BC && !causalCut && !segmentCut) {
            return;
        }
        float[] s = w.s;
        long[] seg = w.seg;
        // Padding rows may hold stale scores past their block's colEnd: mask them whole.
        Arrays.fill(s, rows * BC, rowsPad * BC, Float.NEGATIVE_INFINITY);
        for (int r = 0; r < rows; r++) {
            int t = i0 + r;
            int off = r * BC;
            int visible = causal ? Math.min(cols, t - j0 + 1) : cols;
            Arrays.fill(s, off + Math.max(visible, 0), off + BC, Float.NEGATIVE_INFINITY);
            if (segmentCut) {
                long own = seg[t];
                for (int c = 0; c < visible; c++) {
                    if (seg[j0 + c] != own) {
                        s[off + c] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
        }
    }

    /** Whether no key of tile j0 can share a segment with the query rows (their id ranges are disjoint). */
    private static boolean segmentsDisjoint(Workspace w, int i0, int rows, int j0) {
        long qMin = Long.MAX_VALUE;
        long qMax = Long.MIN_VALUE;
        for (int r = 0; r < rows; r++) {
            qMin = Math.min(qMin, w.seg[i0 + r]);
            qMax = Math.max(qMax, w.seg[i0 + r]);
        }
        int tile = j0 / BC;
        return w.segMax[tile] < qMin || w.segMin[tile] > qMax;
    }

    /** Whether every query row and key of the tile pair carry the same segment id. */
    private static boolean segmentsUniform(Workspace w, int i0, int rows, int j0) {
        int tile = j0 / BC;
        long id = w.segMin[tile];
        if (w.segMax[tile] != id) {
            return false;
        }
        for (int r = 0; r < rows; r++) {
            if (w.seg[i0 + r] != id) {
                return false;
            }
        }
        return true;
    }

    // ---------------------------------------------------------------------------------------
    // Loading into tiles
    // ---------------------------------------------------------------------------------------

    /**
     * Copies x [T,D] (row t at element {@code base + t*stride}), rotated on the way when
     * {@code layout} rotates, into key-tile-major transposed blocks: tile j holds
     * {@code x[j*BC + c, d]} at {@code j*BC*D + d*BC + c}. Each tile's [D×BC] panel is contiguous,
     * so the score product streams it with unit stride and no cache-set aliasing for any T.
     * Columns past T are zero. {@code raw} is left holding the (rotated) rows, [T,D] contiguous.
     */
    private static void loadTransposedTiles(MemorySegment x, long base, long stride, int T, int D, float[] dst,
                                            float[] raw, Layout layout, Workspace w) {
        // The rows first (one bulk copy where they are contiguous, head-major), then a transpose
        // that writes each panel sequentially: scattered writes straight from the segment cost
        // about as much as the transpose itself (profiled). The rotation works on the copied rows.
        loadRows(x, base, stride, 0, T, T, D, D, raw);
        if (layout != null) {
            layout.rotate(raw, D, 0, T, D, false, w);
        }
        for (int j0 = 0; j0 < T; j0 += BC) {
            int cols = Math.min(BC, T - j0);
            int tile = j0 * D;
            for (int d = 0; d < D; d++) {
                int o = tile + d * BC;
                int src = j0 * D + d;
                for (int c = 0; c < cols; c++) {
                    dst[o + c] = raw[src + c * D];
                }
                Arrays.fill(dst, o + cols, o + BC, 0f);
            }
        }
    }

    /** Copies x [T,D] into rows of stride dp, zeroing the padding columns and rows up to the tile end. */
    private static void loadPadded(MemorySegment x, long base, long stride, int T, int D, int dp, float[] dst) {
        loadRows(x, base, stride, 0, T, roundUp(T, BC), D, dp, dst);
    }

    /** {@link #loadPadded} from the contiguous [T,D] rows of {@code raw} instead of a segment. */
    private static void padRows(float[] raw, int T, int D, int dp, float[] dst) {
        if (D == dp) {
            System.arraycopy(raw, 0, dst, 0, T * D);
        } else {
            for (int t = 0; t < T; t++) {
                System.arraycopy(raw, t * D, dst, t * dp, D);
                Arrays.fill(dst, t * dp + D, (t + 1) * dp, 0f);
            }
        }
        Arrays.fill(dst, T * dp, roundUp(T, BC) * dp, 0f);
    }

    /**
     * Rows [i0, i0 + rows) of x (row t at element {@code base + t*stride}) into a tile of stride dp;
     * padding columns and rows are zero.
     */
    private static void loadRows(MemorySegment x, long base, long stride, int i0, int rows, int rowsPad, int D, int dp,
                                 float[] dst) {
        if (D == dp && stride == D) {
            // Contiguous unpadded rows: one bulk copy instead of a (comparatively costly) call per row.
            MemorySegment.copy(x, F32, (base + (long) i0 * D) * 4, dst, 0, rows * D);
        } else {
            for (int r = 0; r < rows; r++) {
                MemorySegment.copy(x, F32, (base + (i0 + r) * stride) * 4, dst, r * dp, D);
                Arrays.fill(dst, r * dp + D, (r + 1) * dp, 0f);
            }
        }
        Arrays.fill(dst, rows * dp, rowsPad * dp, 0f);
    }

    /** The inverse of {@link #loadRows}: tile rows [0, rows) of stride dp into rows [i0, i0 + rows) of x. */
    private static void storeRows(float[] src, MemorySegment x, long base, long stride, int i0, int rows, int D,
                                  int dp) {
        if (D == dp && stride == D) {
            MemorySegment.copy(src, 0, x, F32, (base + (long) i0 * D) * 4, rows * D);
        } else {
            for (int r = 0; r < rows; r++) {
                MemorySegment.copy(src, r * dp, x, F32, (base + (i0 + r) * stride) * 4, D);
            }
        }
    }

    /**
     * As {@link #loadRows}, rotated when {@code layout} rotates, then times {@code scale}: folding
     * the score scale into q costs T·D, not T²·…; rotating first and scaling the rotated floats
     * rounds exactly as the separate rotation followed by {@link #forward}.
     */
    private static void loadQueryTile(MemorySegment q, long base, long stride, int i0, int rows, int rowsPad, int D,
                                      int dp, float scale, float[] dst, Layout layout, Workspace w) {
        loadRows(q, base, stride, i0, rows, rowsPad, D, dp, dst);
        layout.rotate(dst, dp, i0, rows, D, false, w);
        if (scale != 1f) {
            scaleRow(dst, 0, rows * dp, scale);
        }
    }

    /** Reads the segment ids of batch row b and the id range of every key tile; false without segments. */
    private static boolean loadSegments(MemorySegment segments, int b, int T, Workspace w) {
        if (segments == null) {
            return false;
        }
        MemorySegment.copy(segments, I64, (long) b * T * 8, w.seg, 0, T);
        for (int j0 = 0, tile = 0; j0 < T; j0 += BC, tile++) {
            long min = Long.MAX_VALUE;
            long max = Long.MIN_VALUE;
            for (int u = j0; u < Math.min(T, j0 + BC); u++) {
                min = Math.min(min, w.seg[u]);
                max = Math.max(max, w.seg[u]);
            }
            w.segMin[tile] = min;
            w.segMax[tile] = max;
        }
        return true;
    }

    // ---------------------------------------------------------------------------------------
    // Vector helpers
    // ---------------------------------------------------------------------------------------

    /** {@code x[off, off + n) *= alpha}; n is a multiple of the vector width. */
    private static void scaleRow(float[] x, int off, int n, float alpha) {
        FloatVector a = FloatVector.broadcast(SPECIES, alpha);
        for (int i = 0; i < n; i += L) {
            FloatVector.fromArray(SPECIES, x, off + i).mul(a).intoArray(x, off + i);
        }
    }

    private static float dotRow(float[] a, float[] b, int off, int n, float[] lanes) {
        FloatVector acc = FloatVector.zero(SPECIES);
        for (int i = 0; i < n; i += L) {
            acc = FloatVector.fromArray(SPECIES, a, off + i).fma(FloatVector.fromArray(SPECIES, b, off + i), acc);
        }
        acc.intoArray(lanes, 0);
        return sumLanes(lanes);
    }

    /**
     * Sum of a vector's lanes, stored into {@code lanes} by the caller, in lane order.
     * {@code reduceLanes(ADD)} may associate differently in interpreted and compiled code, which
     * made results change once the JIT kicked in. The vector is stored by the caller because a
     * helper taking a FloatVector that C2 does not inline boxes it on every call (see the tile
     * kernels below).
     */
    private static float sumLanes(float[] lanes) {
        float sum = 0f;
        for (int i = 0; i < L; i++) {
            sum += lanes[i];
        }
        return sum;
    }

    /** e^x (see {@link VectorMath#exp}: the same bits interpreted and compiled). */
    private static FloatVector exp(FloatVector x) {
        return VectorMath.exp(x);
    }

    // ---------------------------------------------------------------------------------------
    // Register-blocked tile product
    // ---------------------------------------------------------------------------------------

    /**
     * {@code C[4×n] (+)= A[4×k] · B[k×n]} on heap tiles, one block of {@link #MR} rows of a tile
     * product: {@code A(i,p) = a[ai + i*rs + p*cs]} (so A may be read transposed), B and C are
     * row-major with leading dimensions ldb and ldc, and n is a multiple of the vector width
     * (callers pad). Each C element is summed in p order, so results do not depend on blocking.
     */
    private static void rowBlock(float[] a, int ai, int rs, int cs, float[] b, int bOff, int ldb,
                                 float[] c, int ci, int ldc, int n, int k, boolean accumulate) {
        int j = 0;
        for (; j + MAX_NV * L <= n; j += MAX_NV * L) {
            if (MAX_NV == 4) {
                kernel4x4(a, ai, rs, cs, b, bOff + j, ldb, c, ci + j, ldc, k, accumulate);
            } else {
                kernel4x3(a, ai, rs, cs, b, bOff + j, ldb, c, ci + j, ldc, k, accumulate);
            }
        }
        switch ((n - j) / L) {
            case 3 -> kernel4x3(a, ai, rs, cs, b, bOff + j, ldb, c, ci + j, ldc, k, accumulate);
            case 2 -> kernel4x2(a, ai, rs, cs, b, bOff + j, ldb, c, ci + j, ldc, k, accumulate);
            case 1 -> kernel4x1(a, ai, rs, cs, b, bOff + j, ldb, c, ci + j, ldc, k, accumulate);
            default -> {
            }
        }
    }

    // The kernels below keep a 4-row × NV-vector block of C in registers while streaming k:
    // per step, NV vector loads of B and 4 broadcasts of A feed 4·NV independent FMAs. They are
    // spelled out per NV because C2 keeps only scalar-replaced locals (not arrays) in registers.
    // The output update is spelled out too: a helper taking a FloatVector was compiled on its own
    // and then not inlined ("already compiled into a big method"), so every call boxed its vector
    // (a Float256Vector and its float[] payload) and ran the add's Java fallback: about 60 MB of
    // garbage per 15m training step, all of it from these kernels (JFR allocation samples).

    private static void kernel4x4(float[] a, int ai, int rs, int cs, float[] b, int bj, int ldb,
                                  float[] c, int ci, int ldc, int k, boolean acc) {
        FloatVector c00 = FloatVector.zero(SPECIES), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int p = 0; p < k; p++) {
            int ap = ai + p * cs;
            int bp = bj + p * ldb;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bp);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bp + L);
            FloatVector b2 = FloatVector.fromArray(SPECIES, b, bp + 2 * L);
            FloatVector b3 = FloatVector.fromArray(SPECIES, b, bp + 3 * L);
            FloatVector x = FloatVector.broadcast(SPECIES, a[ap]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01); c02 = x.fma(b2, c02); c03 = x.fma(b3, c03);
            x = FloatVector.broadcast(SPECIES, a[ap + rs]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11); c12 = x.fma(b2, c12); c13 = x.fma(b3, c13);
            x = FloatVector.broadcast(SPECIES, a[ap + 2 * rs]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21); c22 = x.fma(b2, c22); c23 = x.fma(b3, c23);
            x = FloatVector.broadcast(SPECIES, a[ap + 3 * rs]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31); c32 = x.fma(b2, c32); c33 = x.fma(b3, c33);
        }
        if (acc) {
            c00 = c00.add(FloatVector.fromArray(SPECIES, c, ci));
            c01 = c01.add(FloatVector.fromArray(SPECIES, c, ci + L));
            c02 = c02.add(FloatVector.fromArray(SPECIES, c, ci + 2 * L));
            c03 = c03.add(FloatVector.fromArray(SPECIES, c, ci + 3 * L));
            c10 = c10.add(FloatVector.fromArray(SPECIES, c, ci + ldc));
            c11 = c11.add(FloatVector.fromArray(SPECIES, c, ci + ldc + L));
            c12 = c12.add(FloatVector.fromArray(SPECIES, c, ci + ldc + 2 * L));
            c13 = c13.add(FloatVector.fromArray(SPECIES, c, ci + ldc + 3 * L));
            c20 = c20.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc));
            c21 = c21.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc + L));
            c22 = c22.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc + 2 * L));
            c23 = c23.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc + 3 * L));
            c30 = c30.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc));
            c31 = c31.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc + L));
            c32 = c32.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc + 2 * L));
            c33 = c33.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc + 3 * L));
        }
        c00.intoArray(c, ci); c01.intoArray(c, ci + L); c02.intoArray(c, ci + 2 * L); c03.intoArray(c, ci + 3 * L);
        c10.intoArray(c, ci + ldc); c11.intoArray(c, ci + ldc + L); c12.intoArray(c, ci + ldc + 2 * L); c13.intoArray(c, ci + ldc + 3 * L);
        c20.intoArray(c, ci + 2 * ldc); c21.intoArray(c, ci + 2 * ldc + L); c22.intoArray(c, ci + 2 * ldc + 2 * L); c23.intoArray(c, ci + 2 * ldc + 3 * L);
        c30.intoArray(c, ci + 3 * ldc); c31.intoArray(c, ci + 3 * ldc + L); c32.intoArray(c, ci + 3 * ldc + 2 * L); c33.intoArray(c, ci + 3 * ldc + 3 * L);
    }

    private static void kernel4x3(float[] a, int ai, int rs, int cs, float[] b, int bj, int ldb,
                                  float[] c, int ci, int ldc, int k, boolean acc) {
        FloatVector c00 = FloatVector.zero(SPECIES), c01 = c00, c02 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00;
        for (int p = 0; p < k; p++) {
            int ap = ai + p * cs;
            int bp = bj + p * ldb;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bp);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bp + L);
            FloatVector b2 = FloatVector.fromArray(SPECIES, b, bp + 2 * L);
            FloatVector x = FloatVector.broadcast(SPECIES, a[ap]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01); c02 = x.fma(b2, c02);
            x = FloatVector.broadcast(SPECIES, a[ap + rs]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11); c12 = x.fma(b2, c12);
            x = FloatVector.broadcast(SPECIES, a[ap + 2 * rs]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21); c22 = x.fma(b2, c22);
            x = FloatVector.broadcast(SPECIES, a[ap + 3 * rs]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31); c32 = x.fma(b2, c32);
        }
        if (acc) {
            c00 = c00.add(FloatVector.fromArray(SPECIES, c, ci));
            c01 = c01.add(FloatVector.fromArray(SPECIES, c, ci + L));
            c02 = c02.add(FloatVector.fromArray(SPECIES, c, ci + 2 * L));
            c10 = c10.add(FloatVector.fromArray(SPECIES, c, ci + ldc));
            c11 = c11.add(FloatVector.fromArray(SPECIES, c, ci + ldc + L));
            c12 = c12.add(FloatVector.fromArray(SPECIES, c, ci + ldc + 2 * L));
            c20 = c20.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc));
            c21 = c21.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc + L));
            c22 = c22.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc + 2 * L));
            c30 = c30.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc));
            c31 = c31.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc + L));
            c32 = c32.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc + 2 * L));
        }
        c00.intoArray(c, ci); c01.intoArray(c, ci + L); c02.intoArray(c, ci + 2 * L);
        c10.intoArray(c, ci + ldc); c11.intoArray(c, ci + ldc + L); c12.intoArray(c, ci + ldc + 2 * L);
        c20.intoArray(c, ci + 2 * ldc); c21.intoArray(c, ci + 2 * ldc + L); c22.intoArray(c, ci + 2 * ldc + 2 * L);
        c30.intoArray(c, ci + 3 * ldc); c31.intoArray(c, ci + 3 * ldc + L); c32.intoArray(c, ci + 3 * ldc + 2 * L);
    }

    private static void kernel4x2(float[] a, int ai, int rs, int cs, float[] b, int bj, int ldb,
                                  float[] c, int ci, int ldc, int k, boolean acc) {
        FloatVector c00 = FloatVector.zero(SPECIES), c01 = c00;
        FloatVector c10 = c00, c11 = c00;
        FloatVector c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00;
        for (int p = 0; p < k; p++) {
            int ap = ai + p * cs;
            int bp = bj + p * ldb;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bp);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bp + L);
            FloatVector x = FloatVector.broadcast(SPECIES, a[ap]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(SPECIES, a[ap + rs]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(SPECIES, a[ap + 2 * rs]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(SPECIES, a[ap + 3 * rs]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
        }
        if (acc) {
            c00 = c00.add(FloatVector.fromArray(SPECIES, c, ci));
            c01 = c01.add(FloatVector.fromArray(SPECIES, c, ci + L));
            c10 = c10.add(FloatVector.fromArray(SPECIES, c, ci + ldc));
            c11 = c11.add(FloatVector.fromArray(SPECIES, c, ci + ldc + L));
            c20 = c20.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc));
            c21 = c21.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc + L));
            c30 = c30.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc));
            c31 = c31.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc + L));
        }
        c00.intoArray(c, ci); c01.intoArray(c, ci + L);
        c10.intoArray(c, ci + ldc); c11.intoArray(c, ci + ldc + L);
        c20.intoArray(c, ci + 2 * ldc); c21.intoArray(c, ci + 2 * ldc + L);
        c30.intoArray(c, ci + 3 * ldc); c31.intoArray(c, ci + 3 * ldc + L);
    }

    private static void kernel4x1(float[] a, int ai, int rs, int cs, float[] b, int bj, int ldb,
                                  float[] c, int ci, int ldc, int k, boolean acc) {
        FloatVector c0 = FloatVector.zero(SPECIES), c1 = c0, c2 = c0, c3 = c0;
        for (int p = 0; p < k; p++) {
            int ap = ai + p * cs;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bj + p * ldb);
            c0 = FloatVector.broadcast(SPECIES, a[ap]).fma(b0, c0);
            c1 = FloatVector.broadcast(SPECIES, a[ap + rs]).fma(b0, c1);
            c2 = FloatVector.broadcast(SPECIES, a[ap + 2 * rs]).fma(b0, c2);
            c3 = FloatVector.broadcast(SPECIES, a[ap + 3 * rs]).fma(b0, c3);
        }
        if (acc) {
            c0 = c0.add(FloatVector.fromArray(SPECIES, c, ci));
            c1 = c1.add(FloatVector.fromArray(SPECIES, c, ci + ldc));
            c2 = c2.add(FloatVector.fromArray(SPECIES, c, ci + 2 * ldc));
            c3 = c3.add(FloatVector.fromArray(SPECIES, c, ci + 3 * ldc));
        }
        c0.intoArray(c, ci);
        c1.intoArray(c, ci + ldc);
        c2.intoArray(c, ci + 2 * ldc);
        c3.intoArray(c, ci + 3 * ldc);
    }

    // ---------------------------------------------------------------------------------------
    // Plumbing
    // ---------------------------------------------------------------------------------------

    /**
     * Where the rows of each (batch, head) lie and what happens to q and k on the way in. Head-major
     * [B,H,T,D] puts row t of head h at {@code ((b*H + h)*T + t)*D}, stride D; token-major [B,T,H*D],
     * the projections' own layout, at {@code (b*T + t)*H*D + h*D}, stride H*D. A token-major layout
     * may carry a rotary table: q and k rows are then rotated in the tile right after the copy, and
     * dq and dk rows inversely right before theirs.
     */
    private record Layout(boolean tokenMajor, FusedRope.Table table, MemorySegment positions) {

        static final Layout HEAD_MAJOR = new Layout(false, null, null);

        /** The token-major layout, with the table of {@code rotary} (checking its positions), if any. */
        static Layout tokenMajor(Rotary rotary, int B, int T, int D) {
            if (rotary == null) {
                return new Layout(true, null, null);
            }
            return new Layout(true, FusedRope.tableFor(rotary.theta(), D, B, T, rotary.positions()),
                    rotary.positions());
        }

        /** Element offset of row 0 of head {@code head} of batch row b, for a tensor of {@code heads} heads. */
        long base(int b, int head, int heads, int T, int D) {
            return tokenMajor ? ((long) b * T * heads + head) * D : ((long) b * heads + head) * T * D;
        }

        /** Elements from one row (token) of a head to the next. */
        long stride(int heads, int D) {
            return tokenMajor ? (long) heads * D : D;
        }

        /** With a rotation: each token's offset into the table ({@code position * D/2}) of batch row b, into w.tab. */
        void loadPositions(int b, int T, int D, Workspace w) {
            if (table == null) {
                return;
            }
            int half = D / 2;
            for (int t = 0; t < T; t++) {
                long p = positions == null ? t : positions.getAtIndex(I64, (long) b * T + t);
                w.tab[t] = (int) p * half;
            }
        }

        /** Rotates (or inversely) rows [0, rows) of a tile of stride ld, which hold tokens [t0, t0 + rows); none without a table. */
        void rotate(float[] x, int ld, int t0, int rows, int D, boolean inverse, Workspace w) {
            if (table == null) {
                return;
            }
            for (int r = 0; r < rows; r++) {
                FusedRope.rotateRow(x, r * ld, D, table, w.tab[t0 + r], inverse);
            }
        }
    }

    /** Scratch of one thread; arrays only grow. */
    private static final class Workspace {
        float[] kt = new float[0];
        float[] vt = new float[0];
        float[] kp = new float[0];
        float[] vp = new float[0];
        float[] dka = new float[0];
        float[] dva = new float[0];
        float[] q = new float[0];
        float[] dO = new float[0];
        float[] o = new float[0];
        float[] dq = new float[0];
        float[] raw = new float[0];
        final float[] s = new float[BR * BC];
        final float[] ds = new float[BR * BC];
        final float[] m = new float[BR];
        final float[] l = new float[BR];
        final float[] lse = new float[BR];
        final float[] di = new float[BR];
        final float[] lanes = new float[L];
        final int[] keyEnd = new int[BR / MR];
        final int[] colEnd = new int[BR / MR];
        long[] seg = new long[0];
        /** Per token, its row's offset into the rotary table (token-major calls with a rotation). */
        int[] tab = new int[0];
        long[] segMin = new long[0];
        long[] segMax = new long[0];

        Workspace ensure(int T, int D, int dp, boolean backward) {
            int tp = roundUp(T, BC);
            int panel = Math.multiplyExact(tp, dp);
            kt = grow(kt, Math.multiplyExact(tp, D));
            q = grow(q, BR * dp);
            o = grow(o, BR * dp);
            raw = grow(raw, Math.multiplyExact(T, D));
            if (backward) {
                vt = grow(vt, Math.multiplyExact(tp, D));
                kp = grow(kp, panel);
                dka = grow(dka, panel);
                dva = grow(dva, panel);
                dO = grow(dO, BR * dp);
                dq = grow(dq, BR * dp);
            } else {
                vp = grow(vp, panel);
            }
            if (seg.length < T) {
                seg = new long[T];
                tab = new int[T];
                segMin = new long[tp / BC];
                segMax = new long[tp / BC];
            }
            return this;
        }

        private static float[] grow(float[] a, int n) {
            return a.length >= n ? a : new float[n];
        }
    }

    private static int checkShape(int B, int H, int KV, int T, int D) {
        if (B <= 0 || H <= 0 || T <= 0 || D <= 0) {
            throw new IllegalArgumentException("sizes must be positive: B=" + B + " H=" + H + " T=" + T + " D=" + D);
        }
        if (KV <= 0 || H % KV != 0) {
            throw new IllegalArgumentException("query heads H=" + H + " must be a multiple of kv heads KV=" + KV);
        }
        return H / KV;
    }

    private static void parallelFor(int tasks, long work, IntConsumer task) {
        // A parallel stream runs in the ForkJoinPool of the calling task, if any, so callers pick
        // the thread count by where they call from; results do not depend on it.
        if (tasks > 1 && work > PARALLEL_THRESHOLD) {
            IntStream.range(0, tasks).parallel().forEach(task);
        } else {
            for (int i = 0; i < tasks; i++) {
                task.accept(i);
            }
        }
    }

    private static int roundUp(int x, int multiple) {
        return (x + multiple - 1) / multiple * multiple;
    }
}
