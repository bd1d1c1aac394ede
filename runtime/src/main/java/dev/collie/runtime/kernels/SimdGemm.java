package dev.collie.runtime.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Float32 GEMM on the Vector API, with the semantics of {@link CpuKernels#matmulNT},
 * {@link CpuKernels#matmulNN} and {@link CpuKernels#matmulTN}: row-major operands in
 * {@link MemorySegment}s, {@code out (+)= op(a) · op(b)}.
 *
 * <p>Structure (GotoBLAS / BLIS, with the two inner loops swapped): for each NC-wide column
 * panel of the output and each KC-deep slice of the shared dimension, a KC x NC panel of B is
 * packed into NR-wide micro-panels. Then for each MC-high row block an MC x KC block of A is
 * packed, and for each NB-wide part of the B panel (which fits in L2) and each MR-row
 * micro-panel of A, a register-blocked micro-kernel computes the MR x NR output tiles left to
 * right. The three transposes only differ in how the panels are packed, so one micro-kernel
 * serves all.
 *
 * <p>Why A's micro-panel, not B's, is the one held while the other streams (BLIS holds B's):
 * the output tile has to be read and written once per KC slice, and walking the tiles along the
 * output's rows makes those accesses sequential streams that the hardware prefetcher fetches
 * ahead. Walking down a column instead (BLIS order) touches a new 4 KiB page with every row;
 * without a prefetch instruction in Java, every tile then waited for its output lines, which
 * cost about a fifth of the time at 1024³ (profiled). Streaming B's micro-panels from L2 instead
 * of L1 costs little: the kernel needs 64 bytes of B per 12 FMAs.
 *
 * <p>Few rows (a training step's tokens, against a weight larger than the cache): the weight is
 * then nearly all the packing, and in the NT layout (forward, {@code x · W^T}) packing it as B is a
 * transpose. Such products are computed as {@code out^T = W · x^T} instead, the weight
 * packed as A by row copies and the output stored transposed from a scratch block
 * ({@link #swapsOperands}); in the NN layout B's rows are read a few at a time end to end
 * ({@link #PACK_ROWS}). Together 4-12% on a 1b training step (paired runs).
 *
 * <p>Determinism: the output is cut into rectangles, one ForkJoin task each, and every element is
 * computed by exactly one task. An element's value depends only on K's split into KC slices (a
 * function of K alone): inside a slice it is one FMA chain in k order, slices are added to the
 * output in k order, and neither the tile an element falls in nor its lane changes the arithmetic
 * (padding rows, columns and k steps of a tile are zeros or discarded). Which path runs (packed
 * or unpacked) depends on the shape alone too. So results are bit-identical for every thread
 * count. They differ in the last bits from {@link CpuKernels}, which rounds after each multiply
 * instead of using FMA and sums K in one chain.
 */
public final class SimdGemm {

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Floats per vector: 8 with AVX2, 16 with AVX-512. */
    static final int VL = F.length();
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder BO = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** Int lanes as many as {@link #F}'s, and bf16 (short) lanes as many in half the bits. */
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> BF16_LANES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));

    /*
     * Blocking parameters, measured on a 2-core AMD Zen 3 (EPYC, KVM guest; 32 KiB L1d and
     * 512 KiB L2 per core, AVX2 with two 256-bit FMA pipes). The system properties
     * collie.gemm.kc / .nb / .mc / .nc override them for tuning on other machines.
     *
     * MR x NR micro-tile: 6 rows x 2 vectors = 12 accumulator registers plus 2 for the B row and
     *   1 for the broadcast A value: 15 of AVX2's 16 ymm registers. Per k step it issues 12 FMAs
     *   against 8 loads, so the two FMA pipes, not the load ports, are the limit. 4x2 and 8x1
     *   leave too few independent FMA chains to hide the FMA latency; 4x3 and 5x2 made C2 spill
     *   (see microKernel). A C version of the same 6x16 kernel reaches ~95 GFLOP/s per core here,
     *   78% of the 121 GFLOP/s FMA peak; a 4x24 C kernel is no faster.
     * KC = 512: depth of a K slice. Each slice costs one read and write of the output tile, and
     *   output lines are the one access the kernel cannot have in cache, so a deep slice pays.
     *   A's micro-panel (MR x KC = 12 KiB) is then reread from L2 per tile, which is cheap.
     *   Measured against 256 and 384 (with NB and MC to match): 512 was as fast or faster.
     * NB = 128: width of the B part swept per A micro-panel, KC x NB = 256 KiB, half of L2.
     * MC = 48: rows of A packed at once (MC x KC = 96 KiB), swept across each B part in turn;
     *   the B part is fetched into L2 once per MC rows. With 96 (192 KiB) the two blocks filled
     *   L2 too tightly and measured slower.
     * NC = 2048: width of the packed B panel (KC x NC = 4 MiB, per task). A is packed once per
     *   NC columns, so a wide panel keeps A's packing cost negligible.
     */
    static final int MR = 6;
    static final int NR = 2 * VL;
    /** k steps per micro-kernel loop iteration (unrolled by hand; panels are padded to a multiple). */
    private static final int KU = 2;
    static final int KC = roundUp(Integer.getInteger("collie.gemm.kc", 512), KU);
    /**
     * Row stride of packed A: KC plus one cache line, so that consecutive rows of a block do not
     * map to the same few L1 sets, as a power-of-two stride would (a precaution; neutral in the
     * measurements here).
     */
    private static final int LDA = KC + 64 / Float.BYTES;
    static final int NC = roundUp(Integer.getInteger("collie.gemm.nc", 2048), NR);
    static final int NB = roundUp(Integer.getInteger("collie.gemm.nb", 128), NR);
    static final int MC = roundUp(Integer.getInteger("collie.gemm.mc", 48), MR);

    /**
     * Below this many multiply-adds the unpacked path wins. The packed path is already 2-7x
     * faster than the unpacked one from 8x8x8 on, so only trivial products stay unpacked (and
     * products with fewer than MR rows, see {@link #unpacked}).
     */
    static final long SMALL_WORK = Long.getLong("collie.gemm.small", 512);
    /** Below this many multiply-adds one thread is faster than forking (~50 µs of work). */
    static final long PARALLEL_WORK = Long.getLong("collie.gemm.parallel", 1L << 21);
    /** Rows of B packed together in the NN layout ({@link #packB}). */
    static final int PACK_ROWS = Integer.getInteger("collie.gemm.packRows", 4);
    /** Products of at most this many rows swap their operands' roles ({@link #swapsOperands}). */
    static final int SWAP_ROWS = Integer.getInteger("collie.gemm.swapRows", 512);
    /** Rows of A (a weight's rows) computed into scratch before a swapped product stores them transposed. */
    static final int SWAP_STORE_ROWS = 4 * MC;
    /** The most floats of a swapped product's packed activation one task keeps (4 MiB). */
    static final long SWAP_PACKED_FLOATS = 1L << 20;
    /** Swapped products are at least this many times deeper (K) than they have rows (see {@link #swapsOperands}). */
    static final int SWAP_DEPTH_RATIO = Integer.getInteger("collie.gemm.swapDepth", 2);

    /**
     * Whether to keep C2 from hoisting the kernel's broadcast loads (see {@link #microKernel}).
     * The fence is free on x86 but a real barrier on weakly ordered CPUs, and only needed where
     * vector registers are scarce (16 below AVX-512).
     */
    private static final boolean ORDER_LOADS = VL <= 8 && isX86();

    /**
     * Packing buffers not in use, shared by all threads: a task takes one (the most recently returned,
     * still in cache) and gives it back when it ends. Per-thread buffers (a ThreadLocal) became garbage
     * with every pool thread that retired: in a 7B run the heap grew by 0.4 GB of them.
     */
    private static final ConcurrentLinkedDeque<Scratch> SCRATCH = new ConcurrentLinkedDeque<>();

    /** Packing buffers allocated and now idle (for tests). */
    static int idleScratch() {
        return SCRATCH.size();
    }

    /**
     * Lane of column j in a micro-panel row packed from bf16 rows (NN, {@link #packBBf16}): even columns
     * in the first VL lanes, odd ones in the rest.
     */
    static final int[] EVEN_ODD = new int[NR];

    static {
        for (int j = 0; j < NR; j++) {
            EVEN_ODD[j] = j % 2 == 0 ? j / 2 : VL + j / 2;
        }
    }

    private SimdGemm() {
    }

    // ---------------------------------------------------------------------------------------
    // Public API
    // ---------------------------------------------------------------------------------------

    /**
     * {@code out[M,N] (+)= a[M,K] · b[N,K]^T}, on the current ForkJoinPool.
     *
     * @param a          [M,K]
     * @param b          [N,K]
     * @param out        [M,N]; overwritten, or added to when {@code accumulate}
     * @param accumulate add the product to the existing contents of {@code out}
     */
    public static void matmulNT(MemorySegment a, MemorySegment b, MemorySegment out,
                                int M, int N, int K, boolean accumulate) {
        matmulNT(a, b, out, M, N, K, accumulate, defaultThreads());
    }

    /**
     * {@link #matmulNT(MemorySegment, MemorySegment, MemorySegment, int, int, int, boolean)}
     * split into at most {@code threads} tasks of the current ForkJoinPool.
     */
    public static void matmulNT(MemorySegment a, MemorySegment b, MemorySegment out,
                                int M, int N, int K, boolean accumulate, int threads) {
        check(a, (long) M * K, b, (long) N * K, out, M, N, K, threads);
        // A(i,k) = a[i*K + k], B(k,j) = b[j*K + k]
        gemm(a, K, 1, b, 1, K, out, M, N, K, accumulate, threads);
    }

    /**
     * {@code out[M,N] (+)= a[M,K] · b[K,N]}, on the current ForkJoinPool.
     *
     * @param a          [M,K]
     * @param b          [K,N]
     * @param out        [M,N]; overwritten, or added to when {@code accumulate}
     * @param accumulate add the product to the existing contents of {@code out}
     */
    public static void matmulNN(MemorySegment a, MemorySegment b, MemorySegment out,
                                int M, int N, int K, boolean accumulate) {
        matmulNN(a, b, out, M, N, K, accumulate, defaultThreads());
    }

    /**
     * {@link #matmulNN(MemorySegment, MemorySegment, MemorySegment, int, int, int, boolean)}
     * split into at most {@code threads} tasks of the current ForkJoinPool.
     */
    public static void matmulNN(MemorySegment a, MemorySegment b, MemorySegment out,
                                int M, int N, int K, boolean accumulate, int threads) {
        check(a, (long) M * K, b, (long) K * N, out, M, N, K, threads);
        // A(i,k) = a[i*K + k], B(k,j) = b[k*N + j]
        gemm(a, K, 1, b, N, 1, out, M, N, K, accumulate, threads);
    }

    /**
     * {@code out[M,N] (+)= a[R,M]^T · b[R,N]}, on the current ForkJoinPool.
     *
     * @param a          [R,M]
     * @param b          [R,N]
     * @param out        [M,N]; overwritten, or added to when {@code accumulate}
     * @param accumulate add the product to the existing contents of {@code out}
     */
    public static void matmulTN(MemorySegment a, MemorySegment b, MemorySegment out,
                                int R, int M, int N, boolean accumulate) {
        matmulTN(a, b, out, R, M, N, accumulate, defaultThreads());
    }

    /**
     * {@link #matmulTN(MemorySegment, MemorySegment, MemorySegment, int, int, int, boolean)}
     * split into at most {@code threads} tasks of the current ForkJoinPool.
     */
    public static void matmulTN(MemorySegment a, MemorySegment b, MemorySegment out,
                                int R, int M, int N, boolean accumulate, int threads) {
        check(a, (long) R * M, b, (long) R * N, out, M, N, R, threads);
        // A(i,k) = a[k*M + i], B(k,j) = b[k*N + j]
        gemm(a, 1, M, b, N, 1, out, M, N, R, accumulate, threads);
    }

    /**
     * {@code out[M,N] (+)= A^T · b[R,N]} where A is the [R,M] block of a matrix whose rows are
     * {@code lda} floats long ({@code A(k,i) = a[k*lda + i]}, {@code lda >= M}): columns of a wider
     * matrix, such as a vocabulary tile of the head's logits. Element for element the same arithmetic
     * as {@link #matmulTN} on the block copied out.
     */
    public static void matmulTN(MemorySegment a, int lda, MemorySegment b, MemorySegment out,
                                int R, int M, int N, boolean accumulate) {
        if (lda < M) {
            throw new IllegalArgumentException("row stride " + lda + " is shorter than the block's " + M + " columns");
        }
        check(a, R == 0 ? 0 : (long) (R - 1) * lda + M, b, (long) R * N, out, M, N, R, 1);
        gemm(a, 1, lda, b, N, 1, out, M, N, R, accumulate, defaultThreads());
    }

    /**
     * Work on a block of the output once its values are final, while the block is still in cache: a
     * dense layer's activation ({@code linear_gelu}). Each output element is in exactly one block; blocks
     * differ with the thread count, so what the epilogue computes for an element must depend on that
     * element alone.
     */
    @FunctionalInterface
    public interface BlockEpilogue {
        /** Rows {@code [row0, row0 + rows)} and columns {@code [col0, col0 + cols)} of the output are final. */
        void apply(int row0, int rows, int col0, int cols);
    }

    /**
     * Receives a final block of a product that has no output matrix ({@link #matmulTNBlocks}): element
     * (i, j) of rows {@code [row0, row0 + rows)} and columns {@code [col0, col0 + cols)} is float
     * {@code offset + (i - row0) * ld + (j - col0)} of {@code c}, the calling task's scratch, which
     * the next block overwrites once this call returns. Blocks of one call are disjoint and may arrive
     * on several threads at once.
     */
    @FunctionalInterface
    public interface BlockSink {
        void accept(int row0, int rows, int col0, int cols, MemorySegment c, long offset, long ld);
    }

    /**
     * Whether {@link #matmulTNBlocks} with {@code R} shared rows hands over blocks straight from the
     * kernel (R within one KC slice, so a block is final as soon as it is computed) rather than
     * computing the whole product first.
     */
    public static boolean blocksFromKernel(int R) {
        return R <= KC;
    }

    /**
     * {@code a[R,M]^T · b[R,N]} handed to {@code sink} block by block instead of written to an output:
     * the kernel of a weight's gradient whose update is fused in (FuseWeightUpdate). With R within one
     * KC slice ({@link #blocksFromKernel}), each task computes an MC-row block of a column panel into
     * its own scratch and hands it over at once, while it is in cache: no [M, N] result exists, and
     * the receiver runs on every thread. Otherwise the product goes to a temporary [M, N] matrix, handed
     * over as one block. Element for element the arithmetic of {@link #matmulTN}, so the blocks hold its
     * bits, whatever the thread count.
     */
    public static void matmulTNBlocks(MemorySegment a, MemorySegment b, int R, int M, int N, BlockSink sink) {
        if (M < 0 || N < 0) {
            throw new IllegalArgumentException("negative matmul size " + M + "x" + N + "x" + R);
        }
        check(a, (long) R * M, b, (long) R * N, b, 0, 0, R, 1);
        long work = (long) M * N * R;
        if (M == 0 || N == 0) {
            return;
        }
        if (R == 0 || !blocksFromKernel(R) || work < SMALL_WORK || M < MR) {
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                MemorySegment whole = arena.allocate((long) M * N * Float.BYTES, 64);
                matmulTN(a, b, whole, R, M, N, false);
                sink.accept(0, M, 0, N, whole, 0, N);
            }
            return;
        }
        gemm(a, 1, M, b, false, N, 1, null, M, N, R, false, defaultThreads(), null, sink);
    }

    /**
     * {@link #matmulNT(MemorySegment, MemorySegment, MemorySegment, int, int, int, boolean)}, then
     * {@code epilogue} on every block of the output as it becomes final; {@code b} in bfloat16 when
     * {@code bBf16}.
     */
    public static void matmulNT(MemorySegment a, MemorySegment b, boolean bBf16, MemorySegment out,
                                int M, int N, int K, boolean accumulate, BlockEpilogue epilogue) {
        check(a, (long) M * K, out, 0, out, M, N, K, 1);
        if (bBf16) {
            needBf16(b, (long) N * K);
        } else {
            need(b, (long) N * K, "b");
        }
        gemm(a, K, 1, b, bBf16, 1, K, out, M, N, K, accumulate, defaultThreads(), epilogue);
    }

    /**
     * {@code out[M,N] (+)= a[M,K] · b[N,K]^T} with {@code b} in bfloat16 (a model's weights stored
     * in bf16): the values are widened to float as B is packed, so the product costs what the float
     * one does and no float copy of the weight is ever made.
     */
    public static void matmulNTBf16(MemorySegment a, MemorySegment b, MemorySegment out,
                                    int M, int N, int K, boolean accumulate) {
        check(a, (long) M * K, out, 0, out, M, N, K, 1);
        needBf16(b, (long) N * K);
        gemm(a, K, 1, b, true, 1, K, out, M, N, K, accumulate, defaultThreads());
    }

    /** {@code out[M,N] (+)= a[M,K] · b[K,N]} with {@code b} in bfloat16 (see {@link #matmulNTBf16}). */
    public static void matmulNNBf16(MemorySegment a, MemorySegment b, MemorySegment out,
                                    int M, int N, int K, boolean accumulate) {
        check(a, (long) M * K, out, 0, out, M, N, K, 1);
        needBf16(b, (long) K * N);
        gemm(a, K, 1, b, true, N, 1, out, M, N, K, accumulate, defaultThreads());
    }

    /**
     * {@link #matmulNT(MemorySegment, MemorySegment, boolean, MemorySegment, int, int, int, boolean, BlockEpilogue)}
     * with the operands' roles kept whatever the shape ({@link #swapsOperands}): the reference the
     * swapped path is tested against, bit for bit.
     */
    static void matmulNTUnswapped(MemorySegment a, MemorySegment b, boolean bBf16, MemorySegment out,
                                  int M, int N, int K, boolean accumulate, int threads) {
        check(a, (long) M * K, out, 0, out, M, N, K, threads);
        gemm(a, K, 1, b, bBf16, 1, K, out, M, N, K, accumulate, threads, null, null, false);
    }

    /**
     * Threads used by the overloads without a count: the parallelism of the pool the caller runs
     * in; a caller outside any pool also runs tasks itself while it waits for the common pool.
     */
    public static int defaultThreads() {
        ForkJoinPool pool = ForkJoinTask.getPool();
        return pool != null ? pool.getParallelism() : ForkJoinPool.getCommonPoolParallelism() + 1;
    }


    // ---------------------------------------------------------------------------------------
    // Driver
    // ---------------------------------------------------------------------------------------

    /**
     * {@code C (+)= A·B} for {@code A(i,k) = a[i*ars + k*acs]}, {@code B(k,j) = b[k*brs + j*bcs]}
     * (element strides, one of each pair is 1) and a row-major {@code C = c[M,N]}.
     */
    private static void gemm(MemorySegment a, long ars, long acs, MemorySegment b, long brs, long bcs,
                             MemorySegment c, int M, int N, int K, boolean accumulate, int threads) {
        gemm(a, ars, acs, b, false, brs, bcs, c, M, N, K, accumulate, threads);
    }

    /** As above, with B's elements bfloat16 when {@code bf16}. */
    private static void gemm(MemorySegment a, long ars, long acs, MemorySegment b, boolean bf16, long brs, long bcs,
                             MemorySegment c, int M, int N, int K, boolean accumulate, int threads) {
        gemm(a, ars, acs, b, bf16, brs, bcs, c, M, N, K, accumulate, threads, null);
    }

    /** As above, then {@code epilogue} (when not null) on each block of C once it is final. */
    private static void gemm(MemorySegment a, long ars, long acs, MemorySegment b, boolean bf16, long brs, long bcs,
                             MemorySegment c, int M, int N, int K, boolean accumulate, int threads,
                             BlockEpilogue epilogue) {
        gemm(a, ars, acs, b, bf16, brs, bcs, c, M, N, K, accumulate, threads, epilogue, null);
    }

    /**
     * As above; with a {@code sink} (and no C) each block goes to the sink from per-thread scratch
     * instead (the caller guarantees the packed path and one K slice, see {@link #matmulTNBlocks}).
     */
    private static void gemm(MemorySegment a, long ars, long acs, MemorySegment b, boolean bf16, long brs, long bcs,
                             MemorySegment c, int M, int N, int K, boolean accumulate, int threads,
                             BlockEpilogue epilogue, BlockSink sink) {
        gemm(a, ars, acs, b, bf16, brs, bcs, c, M, N, K, accumulate, threads, epilogue, sink, true);
    }

    /** As above; {@code maySwap} false keeps the operands' roles whatever the shape (for tests). */
    private static void gemm(MemorySegment a, long ars, long acs, MemorySegment b, boolean bf16, long brs, long bcs,
                             MemorySegment c, int M, int N, int K, boolean accumulate, int threads,
                             BlockEpilogue epilogue, BlockSink sink, boolean maySwap) {
        if (M == 0 || N == 0) {
            return;
        }
        if (epilogue != null && (K == 0 || (long) M * N * K < SMALL_WORK || M < MR)) {
            // The paths without blocks: the whole output is one block.
            gemm(a, ars, acs, b, bf16, brs, bcs, c, M, N, K, accumulate, threads, null);
            epilogue.apply(0, M, 0, N);
            return;
        }
        if (K == 0) {
            if (!accumulate) {
                c.asSlice(0, (long) M * N * Float.BYTES).fill((byte) 0);
            }
            return;
        }
        long work = (long) M * N * K;
        int tasks = work < PARALLEL_WORK ? 1 : threads;
        if (bf16 && (work < SMALL_WORK || M < MR)) {
            // The unpacked path reads B in place; give it a float copy (matrix-vector products,
            // such as decoding one token, where the copy costs about what the product does).
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                long n = (long) K * N;
                MemorySegment wide = arena.allocate(n * Float.BYTES, 64);
                for (long i = 0; i < n; i++) {
                    wide.setAtIndex(F32, i, Float.intBitsToFloat(b.getAtIndex(BF16, i) << 16));
                }
                gemm(a, ars, acs, wide, false, brs, bcs, c, M, N, K, accumulate, threads);
            }
            return;
        }
        if (work < SMALL_WORK || M < MR) {
            // Unpacked; split the columns (in whole vectors) if there is enough work.
            int parts = Math.min(tasks, ceilDiv(N, 4 * VL));
            if (parts <= 1) {
                unpacked(a, ars, acs, b, brs, bcs, c, M, N, K, accumulate, 0, N);
                return;
            }
            List<ForkJoinTask<?>> jobs = new ArrayList<>(parts);
            int groups = ceilDiv(N, 4 * VL);
            for (int t = 0; t < parts; t++) {
                int j0 = Math.min(N, groups * t / parts * 4 * VL);
                int j1 = Math.min(N, groups * (t + 1) / parts * 4 * VL);
                jobs.add(ForkJoinTask.adapt(() -> unpacked(a, ars, acs, b, brs, bcs, c, M, N, K, accumulate, j0, j1)));
            }
            ForkJoinTask.invokeAll(jobs);
            return;
        }
        if (maySwap && sink == null && swapsOperands(M, N, K, acs, bcs)) {
            // Computes out^T = op(B)^T · op(A)^T: A'(i', k) = B(k, i'), B'(k, j') = A(j', k).
            gemm(new Gemm(b, bcs, brs, bf16, a, acs, ars, false, c, N, M, K, accumulate, epilogue, null, true), tasks);
            return;
        }
        gemm(new Gemm(a, ars, acs, false, b, brs, bcs, bf16, c, M, N, K, accumulate, epilogue, sink, false), tasks);
    }

    /**
     * Whether a product is computed with its operands' roles swapped ({@code out^T = B^T · A^T}, the
     * output stored transposed): when B is the one packed by transposing (its rows are not contiguous
     * in j, the NT layout of a linear layer's weight) and A's rows are contiguous in k, with few rows.
     * The packed path packs B once per task and A once per NC panel, so with few rows of A almost all
     * packing is B's, a transpose (0.7-0.9 ns a float out of memory for a weight larger than the cache;
     * 1.5-2.4 with the gathers it once used), while a contiguous row copy runs at 0.5-0.6. Swapped, the
     * weight is packed as A' by row copies, and the small activation is the transposed operand, packed
     * once per task. Paired against the unswapped path: 1.09-1.22x on 1b's 256-row products, and no
     * gain from 512 rows on. The output's transposed store costs about as much per element as the
     * weight's pack saves per float, so the product has to be deep, K at least SWAP_DEPTH_RATIO times M:
     * the 476-row last chunk of 15m's head (K = 288) ran 0.93x swapped, 1b's head (K = 2048) 1.29x.
     * The arithmetic of each element is unchanged: the same FMA chain (a product's factors commute
     * exactly) over the same K slices, so the bits do not depend on the choice. A task keeps all of the
     * activation packed (see {@link #runTransposed}), at most SWAP_PACKED_FLOATS floats.
     */
    static boolean swapsOperands(int M, int N, int K, long acs, long bcs) {
        return bcs != 1 && acs == 1 && M <= SWAP_ROWS && N > M && K >= SWAP_DEPTH_RATIO * M
                && (long) roundUp(M, NR) * (K + (long) KU * ceilDiv(K, KC)) <= SWAP_PACKED_FLOATS;
    }

    /** Splits the packed product {@code g} (its M x N x K, after any swap) into {@code tasks} and runs them. */
    private static void gemm(Gemm g, int tasks) {
        int M = g.M();
        int N = g.N();
        int K = g.K();
        long acs = g.acs();
        long bcs = g.bcs();
        if (tasks == 1) {
            g.run(0, M, 0, N);
            return;
        }
        // Split the output into a pm x pn grid of equal tasks in whole micro-tiles, the grid
        // whose slowest task is cheapest: its multiply-adds plus its packing. A task packs its
        // columns of B once and its rows of A once per NC panel; in multiply-add equivalents a
        // packed float costs about 3 where it is a straight copy and 16 where packing transposes
        // (B for NT, A for TN), so NT splits the columns and TN the rows.
        double packA = acs == 1 ? 3 : 16;
        double packB = bcs == 1 ? 3 : 16;
        int mTiles = ceilDiv(M, MR);
        int nTiles = ceilDiv(N, NR);
        int pm = 1;
        int pn = 1;
        double bestCost = Double.MAX_VALUE;
        for (int p = 1; p <= Math.min(tasks, mTiles); p++) {
            int q = Math.min(tasks / p, nTiles);
            long m = (long) ceilDiv(mTiles, p) * MR;
            long n = (long) ceilDiv(nTiles, q) * NR;
            double cost = (double) m * n * K + K * (packB * n + packA * m * ceilDiv((int) n, NC));
            if (cost < bestCost) {
                bestCost = cost;
                pm = p;
                pn = q;
            }
        }
        List<ForkJoinTask<?>> jobs = new ArrayList<>(pm * pn);
        for (int ti = 0; ti < pm; ti++) {
            int m0 = Math.min(M, (int) ((long) mTiles * ti / pm) * MR);
            int m1 = Math.min(M, (int) ((long) mTiles * (ti + 1) / pm) * MR);
            for (int tj = 0; tj < pn; tj++) {
                int n0 = Math.min(N, (int) ((long) nTiles * tj / pn) * NR);
                int n1 = Math.min(N, (int) ((long) nTiles * (tj + 1) / pn) * NR);
                if (m0 < m1 && n0 < n1) {
                    jobs.add(ForkJoinTask.adapt(() -> g.run(m0, m1, n0, n1)));
                }
            }
        }
        ForkJoinTask.invokeAll(jobs);
    }

    /**
     * One matmul call: operands, layout and the K split, shared by its tasks. With {@code transposeC}
     * the product computed is the output's transpose: element (i, j) goes to {@code c[j*M + i]}, and
     * the epilogue sees the output's coordinates.
     */
    private record Gemm(MemorySegment a, long ars, long acs, boolean aBf16, MemorySegment b, long brs, long bcs,
                        boolean bf16, MemorySegment c, int M, int N, int K, boolean accumulate,
                        BlockEpilogue epilogue, BlockSink sink, boolean transposeC) {

        /** Computes {@code C[m0,m1) x [n0,n1)} on the calling thread. */
        void run(int m0, int m1, int n0, int n1) {
            Scratch s = SCRATCH.pollFirst();
            if (s == null) {
                s = new Scratch();
            }
            try {
                if (transposeC) {
                    runTransposed(this, s, m0, m1, n0, n1);
                } else {
                    runPacked(s, m0, m1, n0, n1);
                }
            } finally {
                SCRATCH.offerFirst(s);
            }
        }

        private void runPacked(Scratch s, int m0, int m1, int n0, int n1) {
            // Equal slices of at most KC: the split is a function of K alone (determinism), and
            // 288 = 2 x 144 beats 256 + 32, whose thin slice pays a full output update.
            int kcStep = ceilDiv(K, ceilDiv(K, KC));
            long ldc = (long) N * Float.BYTES;
            // bf16 rows are packed with their columns in even/odd lane order (packBBf16)
            boolean evenOdd = bf16 && bcs == 1;
            for (int jc = n0; jc < n1; jc += NC) {
                int nc = Math.min(NC, n1 - jc);
                for (int pc = 0; pc < K; pc += kcStep) {
                    int kc = Math.min(kcStep, K - pc);
                    int kp = roundUp(kc, KU);
                    if (bf16) {
                        packBBf16(b, brs, bcs, pc, kc, kp, jc, nc, s.bp);
                    } else {
                        packB(b, brs, bcs, pc, kc, kp, jc, nc, s.bp);
                    }
                    boolean overwrite = pc == 0 && !accumulate;
                    for (int ic = m0; ic < m1; ic += MC) {
                        int mc = Math.min(MC, m1 - ic);
                        packA(a, ars, acs, ic, mc, pc, kc, kp, s.ap);
                        if (sink != null) {
                            // One K slice: the block is final once computed; [mc, nc] scratch of row stride NC.
                            MemorySegment cs = s.blockScratch();
                            for (int jb = 0; jb < nc; jb += NB) {
                                macroKernel(mc, Math.min(NB, nc - jb), kp, s.ap, s.bp, jb * kp, cs,
                                        (long) jb * Float.BYTES, (long) NC * Float.BYTES, true, s.tile, evenOdd);
                            }
                            sink.accept(ic, mc, jc, nc, cs, 0, NC);
                            continue;
                        }
                        for (int jb = 0; jb < nc; jb += NB) {
                            long cOff = ((long) ic * N + jc + jb) * Float.BYTES;
                            macroKernel(mc, Math.min(NB, nc - jb), kp, s.ap, s.bp, jb * kp, c, cOff, ldc,
                                    overwrite, s.tile, evenOdd);
                            if (epilogue != null && pc + kc == K) {
                                epilogue.apply(ic, mc, jc + jb, Math.min(NB, nc - jb));
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * {@link Gemm#run} for a product computed transposed (operands swapped): all of B's K slices for
     * columns [n0, n1) are packed first, then each MC-row block of A runs through every slice into a
     * scratch block, which is stored transposed once it is final. Storing each tile transposed after
     * each slice instead (sixteen scattered rows per tile) cost a fifth of the product's time. The
     * scratch starts from C's values when accumulating, so every element sees the additions in the
     * same order as the unswapped path.
     */
    private static void runTransposed(Gemm g, Scratch s, int m0, int m1, int n0, int n1) {
        int K = g.K();
        int kcStep = ceilDiv(K, ceilDiv(K, KC));
        int slices = ceilDiv(K, kcStep);
        int width = n1 - n0;
        int panelWidth = roundUp(width, NR);
        int sliceFloats = roundUp(kcStep, KU) * panelWidth;
        float[] bp = s.wideB((long) slices * sliceFloats);
        for (int q = 0; q < slices; q++) {
            int pc = q * kcStep;
            int kc = Math.min(kcStep, K - pc);
            packB(g.b(), g.brs(), g.bcs(), pc, kc, roundUp(kc, KU), n0, width, bp, q * sliceFloats);
        }
        MemorySegment cs = s.transposeBlock((long) SWAP_STORE_ROWS * panelWidth);
        long ldcs = (long) panelWidth * Float.BYTES;
        MemorySegment c = g.c();
        long ldc = (long) g.M() * Float.BYTES;
        for (int is = m0; is < m1; is += SWAP_STORE_ROWS) {
            int ms = Math.min(SWAP_STORE_ROWS, m1 - is);
            if (g.accumulate()) {
                transpose(c, (n0 * ldc) + (long) is * Float.BYTES, ldc, width, ms, cs, 0, ldcs);
            }
            for (int ic = is; ic < is + ms; ic += MC) {
                int mc = Math.min(MC, is + ms - ic);
                long block = (long) (ic - is) * ldcs;
                for (int q = 0; q < slices; q++) {
                    int pc = q * kcStep;
                    int kc = Math.min(kcStep, K - pc);
                    int kp = roundUp(kc, KU);
                    if (g.aBf16()) {
                        packABf16(g.a(), g.ars(), ic, mc, pc, kc, kp, s.ap);
                    } else {
                        packA(g.a(), g.ars(), g.acs(), ic, mc, pc, kc, kp, s.ap);
                    }
                    boolean overwrite = q == 0 && !g.accumulate();
                    for (int jb = 0; jb < width; jb += NB) {
                        macroKernel(mc, Math.min(NB, width - jb), kp, s.ap, bp, q * sliceFloats + jb * kp, cs,
                                block + (long) jb * Float.BYTES, ldcs, overwrite, s.tile, false);
                    }
                }
            }
            transpose(cs, 0, ldcs, ms, width, c, (n0 * ldc) + (long) is * Float.BYTES, ldc);
            if (g.epilogue() != null) {
                g.epilogue().apply(n0, width, is, ms);
            }
        }
    }

    /**
     * {@code dst[j, i] = src[i, j]} for the {@code rows x cols} matrix at byte offset {@code so} of
     * {@code src} (row stride {@code lds} bytes) into {@code dst} at {@code d0} (row stride {@code ldd}):
     * four rows of src at a time, each read in order, their values at each column written side by side
     * into four rows of dst (as the transposing packs do). Once per SWAP_STORE_ROWS rows of A and all of
     * K, so it costs a few thousandths of the block's multiply-adds; the block is that tall so that each
     * of dst's rows (a page apart when the output is wide) gets a run of lines, not a few floats.
     */
    private static void transpose(MemorySegment src, long so, long lds, int rows, int cols, MemorySegment dst,
                                  long d0, long ldd) {
        int i = 0;
        for (; i + 4 <= rows; i += 4) {
            long r0 = so + i * lds;
            long w0 = d0 + (long) i * Float.BYTES;
            for (int j = 0; j < cols; j++) {
                long at = r0 + (long) j * Float.BYTES;
                long to = w0 + j * ldd;
                dst.set(F32, to, src.get(F32, at));
                dst.set(F32, to + Float.BYTES, src.get(F32, at + lds));
                dst.set(F32, to + 2 * Float.BYTES, src.get(F32, at + 2 * lds));
                dst.set(F32, to + 3 * Float.BYTES, src.get(F32, at + 3 * lds));
            }
        }
        for (; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                dst.set(F32, d0 + (long) i * Float.BYTES + j * ldd, src.get(F32, so + i * lds + (long) j * Float.BYTES));
            }
        }
    }

    /** A task's packing buffers, sized for the largest blocks, allocated once and reused (see SCRATCH). */
    private static final class Scratch {
        final float[] ap = new float[MC * LDA];
        final float[] bp = new float[NC * KC];
        final float[] tile = new float[MR * NR];
        /** All K slices of a transposed product's B (grown on demand) and its C block. */
        private float[] wideB = new float[0];
        private MemorySegment transposeBlock = MemorySegment.NULL;

        float[] wideB(long floats) {
            if (wideB.length < floats) {
                wideB = new float[Math.toIntExact(floats)];
            }
            return wideB;
        }

        /** Off the heap: the kernel's vector stores into a heap segment ran at a fraction of the speed. */
        MemorySegment transposeBlock(long floats) {
            if (transposeBlock.byteSize() < floats * Float.BYTES) {
                transposeBlock = java.lang.foreign.Arena.ofAuto().allocate(floats * Float.BYTES, 64);
            }
            return transposeBlock;
        }

        /** An MC x NC block of C for {@link BlockSink}s, allocated on first use. */
        private MemorySegment block;

        MemorySegment blockScratch() {
            if (block == null) {
                block = java.lang.foreign.Arena.ofAuto().allocate((long) MC * NC * Float.BYTES, 64);
            }
            return block;
        }
    }

    // ---------------------------------------------------------------------------------------
    // Packing
    // ---------------------------------------------------------------------------------------

    /**
     * Packs {@code A[ic, ic+mc) x [pc, pc+kc)} row by row: {@code ap[i*LDA + k] = A(ic+i, pc+k)},
     * with steps [kc, kp) and the rows that fill the last micro-panel zeroed. The row stride is
     * the constant LDA, so the micro-kernel reaches all six rows of a micro-panel from one index
     * with constant displacements.
     */
    static void packA(MemorySegment a, long ars, long acs, int ic, int mc, int pc, int kc,
                              int kp, float[] ap) {
        if (acs == 1) {
            // Rows of A are contiguous in k (NT, NN): one bulk copy per row.
            for (int i = 0; i < mc; i++) {
                MemorySegment.copy(a, F32, ((ic + i) * ars + pc) * Float.BYTES, ap, i * LDA, kc);
                Arrays.fill(ap, i * LDA + kc, i * LDA + kp, 0f);
            }
        } else {
            // Columns of A are contiguous in i (TN): a transpose, four k-rows at a time, each read in
            // i order, their four values at each i written side by side (see packB's NT case).
            long r = acs * Float.BYTES;
            int k = 0;
            for (; k + 4 <= kc; k += 4) {
                transposeFour(a, ((pc + k) * acs + ic) * Float.BYTES, r, mc, ap, k, LDA);
            }
            for (; k < kc; k++) {
                long src = ((pc + k) * acs + ic) * Float.BYTES;
                for (int i = 0; i < mc; i++) {
                    ap[i * LDA + k] = a.get(F32, src + (long) i * Float.BYTES);
                }
            }
            for (int i = 0; i < mc; i++) {
                Arrays.fill(ap, i * LDA + kc, i * LDA + kp, 0f);
            }
        }
        for (int i = mc; i < roundUp(mc, MR); i++) {
            Arrays.fill(ap, i * LDA, i * LDA + kp, 0f);
        }
    }

    /**
     * {@link #packA} for a bfloat16 A whose rows are contiguous in k (a weight in the NT layout, when
     * the operands are swapped): each element widened, exactly, as it is copied.
     */
    static void packABf16(MemorySegment a, long ars, int ic, int mc, int pc, int kc, int kp, float[] ap) {
        for (int i = 0; i < mc; i++) {
            long src = (ic + i) * ars + pc;
            int d = i * LDA;
            int k = 0;
            for (; k + VL <= kc; k += VL) {
                widenInto(a, src + k, ap, d + k);
            }
            for (; k < kc; k++) {
                ap[d + k] = Float.intBitsToFloat(a.getAtIndex(BF16, src + k) << 16);
            }
            Arrays.fill(ap, d + kc, d + kp, 0f);
        }
        for (int i = mc; i < roundUp(mc, MR); i++) {
            Arrays.fill(ap, i * LDA, i * LDA + kp, 0f);
        }
    }

    /**
     * Packs {@code B[pc, pc+kc) x [jc, jc+nc)} into NR-column micro-panels of depth {@code kp}:
     * panel q holds {@code bp[q*NR*kp + k*NR + j] = B(pc + k, jc + q*NR + j)}, with columns past
     * the block and steps [kc, kp) zeroed.
     */
    static void packB(MemorySegment b, long brs, long bcs, int pc, int kc, int kp, int jc,
                      int nc, float[] bp) {
        packB(b, brs, bcs, pc, kc, kp, jc, nc, bp, 0);
    }

    /** {@link #packB} into {@code bp} from index {@code bo}. */
    static void packB(MemorySegment b, long brs, long bcs, int pc, int kc, int kp, int jc,
                      int nc, float[] bp, int bo) {
        int full = nc / NR * NR;
        if (bcs == 1) {
            // Rows of B are contiguous in j (NN, TN): NR floats per k and micro-panel. PACK_ROWS rows
            // of B at a time, each read from end to end across all micro-panels: a few sequential
            // streams that the hardware prefetcher follows, where one micro-panel at a time read a
            // line from each of KC rows (a page each) and ran at twice the time out of memory
            // (1.0-1.4 against 0.6-0.8 ns a float). One row at a time writes NC/NR streams a
            // panel apart that share L1 sets and thrash; PACK_ROWS rows write PACK_ROWS * NR
            // consecutive floats to each.
            for (int k0 = 0; k0 < kc; k0 += PACK_ROWS) {
                int k1 = Math.min(kc, k0 + PACK_ROWS);
                for (int jp = 0; jp < full; jp += NR) {
                    for (int k = k0; k < k1; k++) {
                        long src = ((pc + k) * brs + jc + jp) * Float.BYTES;
                        for (int v = 0; v < NR; v += VL) {
                            FloatVector.fromMemorySegment(F, b, src + (long) v * Float.BYTES, BO)
                                    .intoArray(bp, bo + jp * kp + k * NR + v);
                        }
                    }
                }
            }
            if (full < nc) {
                for (int k = 0; k < kc; k++) {
                    int d = bo + full * kp + k * NR;
                    MemorySegment.copy(b, F32, ((pc + k) * brs + jc + full) * Float.BYTES, bp, d, nc - full);
                    Arrays.fill(bp, d + nc - full, d + NR, 0f);
                }
            }
        } else {
            // Columns of B are contiguous in k (NT): a transpose, four columns at a time, each read
            // in k order, their four values at each k written side by side. Plain scalar copies: a
            // bulk copy to L1 and a gather transpose from there ran at 1.1 ns a float from cache
            // and 1.2-2.1 from memory, these at 0.6 and 0.7-0.9 (a vector transpose needs lane
            // shuffles the Vector API does not compile well on AVX2).
            long r = bcs * Float.BYTES;
            for (int jp = 0; jp < nc; jp += NR) {
                int nr = Math.min(NR, nc - jp);
                int d = bo + jp * kp;
                int j = 0;
                for (; j + 4 <= nr; j += 4) {
                    transposeFour(b, ((jc + jp + j) * bcs + pc) * Float.BYTES, r, kc, bp, d + j, NR);
                }
                for (; j < NR; j++) {
                    long src = ((jc + jp + j) * bcs + pc) * Float.BYTES;
                    for (int k = 0; k < kc; k++) {
                        bp[d + k * NR + j] = j < nr ? b.get(F32, src + (long) k * Float.BYTES) : 0f;
                    }
                }
            }
        }
        for (int jp = 0; jp < nc; jp += NR) {
            Arrays.fill(bp, bo + jp * kp + kc * NR, bo + jp * kp + kp * NR, 0f);
        }
    }

    /**
     * The transposing packs' step: four rows of {@code src} (from byte offset {@code at}, {@code r}
     * bytes apart), {@code n} floats each, read in order; their t-th values go side by side to
     * {@code dst[d + t*step .. + 3]}. Scalar copies: reading a few rows as streams and writing whole
     * groups beat a bulk copy plus gathers (see packB).
     */
    private static void transposeFour(MemorySegment src, long at, long r, int n, float[] dst, int d, int step) {
        for (int t = 0; t < n; t++) {
            int o = d + t * step;
            long x = at + (long) t * Float.BYTES;
            dst[o] = src.get(F32, x);
            dst[o + 1] = src.get(F32, x + r);
            dst[o + 2] = src.get(F32, x + 2 * r);
            dst[o + 3] = src.get(F32, x + 3 * r);
        }
    }

    /**
     * {@link #packB} for a bfloat16 B: the same panels, each element widened (bf16 is the top half
     * of a float, so widening is a 16-bit shift and exact).
     */
    static void packBBf16(MemorySegment b, long brs, long bcs, int pc, int kc, int kp, int jc,
                          int nc, float[] bp) {
        if (bcs == 1) {
            // Rows contiguous in j (NN). Each int of a row holds two bf16 columns, 2c in its low half and
            // 2c + 1 in its high half, so widening is a shift (the even column) and a mask (the odd one):
            // no lane conversion, which ran at a third of a float copy's speed. A micro-panel row keeps
            // the even columns in its first VL lanes and the odd ones in the rest (EVEN_ODD); storeTile
            // puts them back in order. Rows are read PACK_ROWS at a time from end to end, as packB
            // reads float rows.
            // (The two halves are the first and second short in memory on a little-endian machine.)
            int full = BO == ByteOrder.LITTLE_ENDIAN ? nc / NR * NR : 0;
            for (int k0 = 0; k0 < kc; k0 += PACK_ROWS) {
                int k1 = Math.min(kc, k0 + PACK_ROWS);
                for (int jp = 0; jp < full; jp += NR) {
                    for (int k = k0; k < k1; k++) {
                        int d = jp * kp + k * NR;
                        IntVector two = IntVector.fromMemorySegment(I, b, ((pc + k) * brs + jc + jp) * 2, BO);
                        two.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(bp, d);
                        two.lanewise(VectorOperators.AND, 0xFFFF0000).reinterpretAsFloats().intoArray(bp, d + VL);
                    }
                }
            }
            // The rest (a last, partial micro-panel) element by element, in the same lane order.
            for (int jp = full; jp < nc; jp += NR) {
                int nr = Math.min(NR, nc - jp);
                for (int k = 0; k < kc; k++) {
                    long src = (pc + k) * brs + jc + jp;
                    int d = jp * kp + k * NR;
                    Arrays.fill(bp, d, d + NR, 0f);
                    for (int col = 0; col < nr; col++) {
                        bp[d + EVEN_ODD[col]] = Float.intBitsToFloat(b.getAtIndex(BF16, src + col) << 16);
                    }
                }
            }
        } else {
            // Columns contiguous in k (NT): the transpose of packB, each value widened as it is copied.
            for (int jp = 0; jp < nc; jp += NR) {
                int nr = Math.min(NR, nc - jp);
                int d = jp * kp;
                int j = 0;
                for (; j + 4 <= nr; j += 4) {
                    long src = (jc + jp + j) * bcs + pc;
                    for (int k = 0; k < kc; k++) {
                        int o = d + k * NR + j;
                        long at = src + k;
                        bp[o] = Float.intBitsToFloat(b.getAtIndex(BF16, at) << 16);
                        bp[o + 1] = Float.intBitsToFloat(b.getAtIndex(BF16, at + bcs) << 16);
                        bp[o + 2] = Float.intBitsToFloat(b.getAtIndex(BF16, at + 2 * bcs) << 16);
                        bp[o + 3] = Float.intBitsToFloat(b.getAtIndex(BF16, at + 3 * bcs) << 16);
                    }
                }
                for (; j < NR; j++) {
                    long src = (jc + jp + j) * bcs + pc;
                    for (int k = 0; k < kc; k++) {
                        bp[d + k * NR + j] = j < nr ? Float.intBitsToFloat(b.getAtIndex(BF16, src + k) << 16) : 0f;
                    }
                }
            }
        }
        for (int jp = 0; jp < nc; jp += NR) {
            Arrays.fill(bp, jp * kp + kc * NR, jp * kp + kp * NR, 0f);
        }
    }

    /**
     * Writes VL bf16 values from element {@code index} of {@code b}, widened, to {@code dst[d..]}:
     * VL short lanes sign-extended to int lanes and shifted up 16 bits, the vector form of
     * {@link #widenIntoScalar}. The JIT did not vectorise the scalar loop of VL iterations, and
     * widening ran at about a quarter of a float copy's speed, which made products with bf16
     * weights in the NN layout (the input gradient of every linear layer) up to a quarter slower
     * than with float weights at small batch.
     */
    static void widenInto(MemorySegment b, long index, float[] dst, int d) {
        ((IntVector) ShortVector.fromMemorySegment(BF16_LANES, b, index * 2, BO)
                .convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 16)
                .reinterpretAsFloats()
                .intoArray(dst, d);
    }

    /** The scalar definition of {@link #widenInto} (bf16 is the top half of a float). */
    static void widenIntoScalar(MemorySegment b, long index, float[] dst, int d) {
        for (int j = 0; j < VL; j++) {
            dst[d + j] = Float.intBitsToFloat(b.getAtIndex(BF16, index + j) << 16);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Kernels
    // ---------------------------------------------------------------------------------------

    /**
     * Updates the mc x nc output block at byte offset {@code cOff} from packed A and B, one
     * A micro-panel at a time across all of B's micro-panels (see the class comment for why).
     */
    static void macroKernel(int mc, int nc, int kp, float[] ap, float[] bp, int bi, MemorySegment c,
                            long cOff, long ldc, boolean overwrite, float[] tile, boolean evenOdd) {
        for (int ir = 0; ir < mc; ir += MR) {
            int mr = Math.min(MR, mc - ir);
            for (int jr = 0; jr < nc; jr += NR) {
                int nr = Math.min(NR, nc - jr);
                microKernel(kp, ap, ir * LDA, bp, bi + jr * kp, tile);
                storeTile(tile, c, cOff + ir * ldc + (long) jr * Float.BYTES, ldc, mr, nr, overwrite, evenOdd);
            }
        }
    }

    /**
     * Computes the MR x NR tile {@code Apanel · Bpanel} into {@code tile} (row-major, NR wide):
     * 12 vector accumulators, each an FMA chain in k order. Row r of the A panel starts at
     * {@code ap[ai + r*LDA]}; the B panel is k-major at {@code bp[bi]}. {@code kp} is a multiple
     * of {@link #KU} (the panels are zero-padded), so the two-step loop has no remainder: it
     * halves the index arithmetic and branches per FMA, and measured faster than one or four
     * steps per iteration.
     *
     * <p>This method only computes; the output update lives in {@link #storeTile}. Every value
     * live across the loop takes a register, and with the output's segment, offsets and flags
     * also live, C2 ran out of general registers, parked one in a vector register and then
     * spilled an accumulator. The {@link #orderLoads} fences order the broadcast loads: without
     * them C2 hoists all six broadcasts of a k step to its top, which needs 12 + 2 + 6 vector
     * registers, more than AVX2's 16, and spills an accumulator to the stack; the store and
     * reload then sit on that accumulator's FMA chain and cost a third of the speed.
     */
    private static void microKernel(int kp, float[] ap, int ai, float[] bp, int bi, float[] tile) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00;
        FloatVector c10 = c00, c11 = c00;
        FloatVector c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00;
        FloatVector c40 = c00, c41 = c00;
        FloatVector c50 = c00, c51 = c00;
        int steps = kp / KU;
        for (int s = 0; s < steps; s++) {
            int a = ai + s * KU;
            int b = bi + s * (KU * NR);
            // step k
            FloatVector b0 = FloatVector.fromArray(F, bp, b);
            FloatVector b1 = FloatVector.fromArray(F, bp, b + VL);
            FloatVector x = FloatVector.broadcast(F, ap[a]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + LDA]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 2 * LDA]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 3 * LDA]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 4 * LDA]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 5 * LDA]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
            orderLoads();
            // step k + 1: the same, one float further along A's rows and one row down B's panel
            b0 = FloatVector.fromArray(F, bp, b + NR);
            b1 = FloatVector.fromArray(F, bp, b + NR + VL);
            x = FloatVector.broadcast(F, ap[a + 1]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 1 + LDA]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 1 + 2 * LDA]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 1 + 3 * LDA]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 1 + 4 * LDA]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            orderLoads();
            x = FloatVector.broadcast(F, ap[a + 1 + 5 * LDA]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
            orderLoads();
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, VL);
        c10.intoArray(tile, NR);
        c11.intoArray(tile, NR + VL);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + VL);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + VL);
        c40.intoArray(tile, 4 * NR);
        c41.intoArray(tile, 4 * NR + VL);
        c50.intoArray(tile, 5 * NR);
        c51.intoArray(tile, 5 * NR + VL);
    }

    /**
     * Keeps C2 from moving later loads above earlier ones. An acquire fence emits no
     * instruction on x86 (TSO); it only constrains C2's schedule.
     */
    private static void orderLoads() {
        if (ORDER_LOADS) {
            VarHandle.acquireFence();
        }
    }

    /**
     * {@code C[0,mr) x [0,nr) (+)= tile} for the output tile at byte offset {@code co}: whole
     * vectors for full tiles, scalars for the ragged edge.
     */
    private static void storeTile(float[] tile, MemorySegment c, long co, long ldc, int mr, int nr,
                                  boolean overwrite, boolean evenOdd) {
        if (mr == MR && nr == NR) {
            long v1 = (long) VL * Float.BYTES;
            for (int r = 0; r < MR; r++) {
                long o = co + r * ldc;
                // columns back in order from an even/odd tile: a gather within the (L1) tile
                FloatVector t0 = evenOdd ? FloatVector.fromArray(F, tile, r * NR, EVEN_ODD, 0)
                        : FloatVector.fromArray(F, tile, r * NR);
                FloatVector t1 = evenOdd ? FloatVector.fromArray(F, tile, r * NR, EVEN_ODD, VL)
                        : FloatVector.fromArray(F, tile, r * NR + VL);
                if (!overwrite) {
                    t0 = t0.add(FloatVector.fromMemorySegment(F, c, o, BO));
                    t1 = t1.add(FloatVector.fromMemorySegment(F, c, o + v1, BO));
                }
                t0.intoMemorySegment(c, o, BO);
                t1.intoMemorySegment(c, o + v1, BO);
            }
            return;
        }
        for (int r = 0; r < mr; r++) {
            long row = co + r * ldc;
            for (int j = 0; j < nr; j++) {
                long o = row + (long) j * Float.BYTES;
                float t = tile[r * NR + (evenOdd ? EVEN_ODD[j] : j)];
                c.set(F32, o, overwrite ? t : c.get(F32, o) + t);
            }
        }
    }

    /**
     * The unpacked path, for {@code C[0,M) x [j0,j1)}: for tiny products, where packing would cost
     * more than the arithmetic, and for fewer than MR rows (matrix-vector products), where the
     * packed path would pack all of B for a few rows and waste most of each micro-tile.
     *
     * <p>Each element is one FMA chain in k order, so its value does not depend on j0 and j1 or
     * on whether it falls in a vector lane or a scalar tail (both round an FMA once); for NT the
     * chain is split across the lanes of one vector and the lanes are summed in a fixed order.
     */
    private static void unpacked(MemorySegment a, long ars, long acs, MemorySegment b, long brs,
                                 long bcs, MemorySegment c, int M, int N, int K, boolean accumulate,
                                 int j0, int j1) {
        for (int i = 0; i < M; i++) {
            if (bcs == 1) {
                axpyRow(a, i * ars, acs, b, brs, c, (long) i * N, K, accumulate, j0, j1);
            } else {
                dotRow(a, i * ars, b, bcs, c, (long) i * N, K, accumulate, j0, j1);
            }
        }
    }

    /**
     * {@code c[cRow + j] (+)= sum_k A(i,k) · b[k*brs + j]} for j in [j0,j1), where B's rows are
     * contiguous (NN, TN): four vectors of columns at a time, each a broadcast-FMA chain over k.
     */
    private static void axpyRow(MemorySegment a, long aRow, long acs, MemorySegment b, long brs,
                                MemorySegment c, long cRow, int K, boolean accumulate, int j0, int j1) {
        int j = j0;
        for (; j + 4 * VL <= j1; j += 4 * VL) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            for (int k = 0; k < K; k++) {
                FloatVector x = FloatVector.broadcast(F, a.getAtIndex(F32, aRow + k * acs));
                long o = (k * brs + j) * Float.BYTES;
                s0 = x.fma(FloatVector.fromMemorySegment(F, b, o, BO), s0);
                s1 = x.fma(FloatVector.fromMemorySegment(F, b, o + VL * Float.BYTES, BO), s1);
                s2 = x.fma(FloatVector.fromMemorySegment(F, b, o + 2 * VL * Float.BYTES, BO), s2);
                s3 = x.fma(FloatVector.fromMemorySegment(F, b, o + 3 * VL * Float.BYTES, BO), s3);
            }
            long o = (cRow + j) * Float.BYTES;
            putVector(s0, c, o, accumulate);
            putVector(s1, c, o + VL * Float.BYTES, accumulate);
            putVector(s2, c, o + 2 * VL * Float.BYTES, accumulate);
            putVector(s3, c, o + 3 * VL * Float.BYTES, accumulate);
        }
        for (; j + VL <= j1; j += VL) {
            FloatVector s0 = FloatVector.zero(F);
            for (int k = 0; k < K; k++) {
                FloatVector x = FloatVector.broadcast(F, a.getAtIndex(F32, aRow + k * acs));
                s0 = x.fma(FloatVector.fromMemorySegment(F, b, (k * brs + j) * Float.BYTES, BO), s0);
            }
            putVector(s0, c, (cRow + j) * Float.BYTES, accumulate);
        }
        for (; j < j1; j++) {
            float s = 0f;
            for (int k = 0; k < K; k++) {
                s = Math.fma(a.getAtIndex(F32, aRow + k * acs), b.getAtIndex(F32, k * brs + j), s);
            }
            put(c, cRow + j, s, accumulate);
        }
    }

    /**
     * {@code c[cRow + j] (+)= dot(a[aRow, aRow+K), b[j*bcs, j*bcs+K))} for j in [j0,j1), where
     * both rows are contiguous in k (NT): four columns at a time sharing each load of A's row,
     * the k chain split across the lanes, then the lanes and the scalar tail summed in order.
     */
    private static void dotRow(MemorySegment a, long aRow, MemorySegment b, long bcs, MemorySegment c,
                               long cRow, int K, boolean accumulate, int j0, int j1) {
        // Vectors only pay for their lane sum from two of them on; shorter rows stay scalar.
        int kv = K >= 2 * VL ? K / VL * VL : 0;
        float[] lanes = new float[VL];
        int j = j0;
        for (; j + 4 <= j1; j += 4) {
            long b0 = j * bcs;
            long b1 = b0 + bcs;
            long b2 = b1 + bcs;
            long b3 = b2 + bcs;
            if (kv == 0) {
                // Four interleaved scalar chains, so FMA latency does not serialize them.
                float t0 = 0f, t1 = 0f, t2 = 0f, t3 = 0f;
                for (int k = 0; k < K; k++) {
                    float x = a.getAtIndex(F32, aRow + k);
                    t0 = Math.fma(x, b.getAtIndex(F32, b0 + k), t0);
                    t1 = Math.fma(x, b.getAtIndex(F32, b1 + k), t1);
                    t2 = Math.fma(x, b.getAtIndex(F32, b2 + k), t2);
                    t3 = Math.fma(x, b.getAtIndex(F32, b3 + k), t3);
                }
                put(c, cRow + j, t0, accumulate);
                put(c, cRow + j + 1, t1, accumulate);
                put(c, cRow + j + 2, t2, accumulate);
                put(c, cRow + j + 3, t3, accumulate);
                continue;
            }
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            for (int k = 0; k < kv; k += VL) {
                FloatVector x = FloatVector.fromMemorySegment(F, a, (aRow + k) * Float.BYTES, BO);
                s0 = x.fma(FloatVector.fromMemorySegment(F, b, (b0 + k) * Float.BYTES, BO), s0);
                s1 = x.fma(FloatVector.fromMemorySegment(F, b, (b1 + k) * Float.BYTES, BO), s1);
                s2 = x.fma(FloatVector.fromMemorySegment(F, b, (b2 + k) * Float.BYTES, BO), s2);
                s3 = x.fma(FloatVector.fromMemorySegment(F, b, (b3 + k) * Float.BYTES, BO), s3);
            }
            put(c, cRow + j, dotTail(a, aRow, b, b0, kv, K, s0, lanes), accumulate);
            put(c, cRow + j + 1, dotTail(a, aRow, b, b1, kv, K, s1, lanes), accumulate);
            put(c, cRow + j + 2, dotTail(a, aRow, b, b2, kv, K, s2, lanes), accumulate);
            put(c, cRow + j + 3, dotTail(a, aRow, b, b3, kv, K, s3, lanes), accumulate);
        }
        for (; j < j1; j++) {
            long b0 = j * bcs;
            FloatVector s0 = FloatVector.zero(F);
            for (int k = 0; k < kv; k += VL) {
                s0 = FloatVector.fromMemorySegment(F, a, (aRow + k) * Float.BYTES, BO)
                        .fma(FloatVector.fromMemorySegment(F, b, (b0 + k) * Float.BYTES, BO), s0);
            }
            put(c, cRow + j, dotTail(a, aRow, b, b0, kv, K, s0, lanes), accumulate);
        }
    }

    /**
     * The lanes of {@code sums} summed in index order (through the scratch {@code lanes}), then
     * the products of [kv, K) added in k order. Summed explicitly rather than with
     * {@code reduceLanes}, whose order is unspecified and may differ between the interpreter and
     * compiled code.
     */
    private static float dotTail(MemorySegment a, long aRow, MemorySegment b, long bRow, int kv, int K,
                                 FloatVector sums, float[] lanes) {
        float s = 0f;
        if (kv > 0) {
            sums.intoArray(lanes, 0);
            for (int l = 0; l < VL; l++) {
                s += lanes[l];
            }
        }
        for (int k = kv; k < K; k++) {
            s = Math.fma(a.getAtIndex(F32, aRow + k), b.getAtIndex(F32, bRow + k), s);
        }
        return s;
    }

    private static void putVector(FloatVector v, MemorySegment c, long off, boolean accumulate) {
        if (accumulate) {
            v = v.add(FloatVector.fromMemorySegment(F, c, off, BO));
        }
        v.intoMemorySegment(c, off, BO);
    }

    private static void put(MemorySegment out, long index, float value, boolean accumulate) {
        out.setAtIndex(F32, index, accumulate ? out.getAtIndex(F32, index) + value : value);
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    private static void check(MemorySegment a, long aElems, MemorySegment b, long bElems, MemorySegment c,
                              int M, int N, int K, int threads) {
        if (M < 0 || N < 0 || K < 0) {
            throw new IllegalArgumentException("negative matmul size " + M + "x" + N + "x" + K);
        }
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be positive: " + threads);
        }
        need(a, aElems, "a");
        need(b, bElems, "b");
        need(c, (long) M * N, "out");
    }

    private static void need(MemorySegment s, long elems, String name) {
        if (s.byteSize() < elems * Float.BYTES) {
            throw new IndexOutOfBoundsException(name + " holds " + s.byteSize() / Float.BYTES
                    + " floats, needs " + elems);
        }
    }

    private static int ceilDiv(int x, int y) {
        return (x + y - 1) / y;
    }

    private static int roundUp(int x, int multiple) {
        return Math.max(multiple, ceilDiv(x, multiple) * multiple);
    }

    private static void needBf16(MemorySegment b, long elems) {
        if (b.byteSize() < elems * 2) {
            throw new IndexOutOfBoundsException("b holds " + b.byteSize() / 2 + " bf16 values, needs " + elems);
        }
    }

    private static boolean isX86() {
        String arch = System.getProperty("os.arch", "");
        return arch.equals("amd64") || arch.equals("x86_64") || arch.equals("x86");
    }
}
