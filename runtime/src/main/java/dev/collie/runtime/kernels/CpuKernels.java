package dev.collie.runtime.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Reference float32 kernels of the CPU backend.
 *
 * <p>Every tensor is a contiguous, row-major, little-endian float32 {@link MemorySegment} whose
 * element {@code i} lives at byte offset {@code 4 * i}; token ids and targets are int64 segments.
 * Shapes are written llm.c style: B batch, T time, C channels, H query heads, KV key/value heads,
 * D head size, V vocabulary, N/M/K/R generic matrix sizes. Output segments must not overlap inputs
 * unless a method says otherwise.
 *
 * <p>These kernels are the numerical ground truth that faster variants are tested against, so they
 * follow PyTorch's float32 conventions and are deterministic: work is split across threads only
 * by whole output rows (or whole heads), and each output element is produced by exactly one thread
 * with a fixed summation order, so results are bit-identical whatever the thread count. Matmuls
 * accumulate in float like BLAS sgemm; reductions inside norms, softmax and cross-entropy use
 * double so that long rows (a 50k vocabulary) do not lose precision.
 */
public final class CpuKernels {

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;

    /** Below roughly this many multiply-adds, forking tasks costs more than it saves. */
    private static final long PARALLEL_THRESHOLD = 1L << 18;

    /**
     * Matmul rows handled together by one task: the shared operand row they all read stays in L1
     * while the block uses it, instead of being streamed from memory once per output row.
     */
    private static final int ROW_BLOCK = 8;

    private static final double SQRT_2_OVER_PI = Math.sqrt(2.0 / Math.PI);
    private static final double GELU_CUBIC = 0.044715;

    private CpuKernels() {
    }

    // ---------------------------------------------------------------------------------------
    // Matrix multiplication
    // ---------------------------------------------------------------------------------------

    /**
     * {@code out[M,N] (+)= a[M,K] · b[N,K]^T}, the linear layer {@code y = x W^T}.
     *
     * @param a          [M,K]
     * @param b          [N,K]
     * @param out        [M,N]; overwritten, or added to when {@code accumulate}
     * @param accumulate add the product to the existing contents of {@code out}
     */
    public static void matmulNT(MemorySegment a, MemorySegment b, MemorySegment out,
                                int M, int N, int K, boolean accumulate) {
        parallelFor(blocks(M), (long) M * N * K, block -> {
            int i0 = block * ROW_BLOCK;
            int i1 = Math.min(M, i0 + ROW_BLOCK);
            int j = 0;
            // Four dot products at once: independent sums hide the latency of float adds. Each one
            // is still summed in k order, so the result equals the plain dot product bit for bit.
            for (; j + 4 <= N; j += 4) {
                long b0 = (long) j * K;
                long b1 = b0 + K;
                long b2 = b1 + K;
                long b3 = b2 + K;
                for (int i = i0; i < i1; i++) {
                    long aRow = (long) i * K;
                    float s0 = 0f;
                    float s1 = 0f;
                    float s2 = 0f;
                    float s3 = 0f;
                    for (int k = 0; k < K; k++) {
                        float aik = a.getAtIndex(F32, aRow + k);
                        s0 += aik * b.getAtIndex(F32, b0 + k);
                        s1 += aik * b.getAtIndex(F32, b1 + k);
                        s2 += aik * b.getAtIndex(F32, b2 + k);
                        s3 += aik * b.getAtIndex(F32, b3 + k);
                    }
                    long o = (long) i * N + j;
                    put(out, o, s0, accumulate);
                    put(out, o + 1, s1, accumulate);
                    put(out, o + 2, s2, accumulate);
                    put(out, o + 3, s3, accumulate);
                }
            }
            for (; j < N; j++) {
                long bRow = (long) j * K;
                for (int i = i0; i < i1; i++) {
                    put(out, (long) i * N + j, dot(a, (long) i * K, b, bRow, K), accumulate);
                }
            }
        });
    }

    /**
     * {@code out[M,N] (+)= a[M,K] · b[K,N]}.
     *
     * @param a          [M,K]
     * @param b          [K,N]
     * @param out        [M,N]; overwritten, or added to when {@code accumulate}
     * @param accumulate add the product to the existing contents of {@code out}
     */
    public static void matmulNN(MemorySegment a, MemorySegment b, MemorySegment out,
                                int M, int N, int K, boolean accumulate) {
        parallelFor(blocks(M), (long) M * N * K, block -> {
            int i0 = block * ROW_BLOCK;
            int i1 = Math.min(M, i0 + ROW_BLOCK);
            // i-k-j order: each out row is a sum of b rows scaled by a[i,k], so every inner loop
            // streams contiguous memory.
            float[][] acc = new float[i1 - i0][N];
            for (int k = 0; k < K; k++) {
                long bRow = (long) k * N;
                for (int i = i0; i < i1; i++) {
                    axpy(a.getAtIndex(F32, (long) i * K + k), b, bRow, acc[i - i0], N);
                }
            }
            for (int i = i0; i < i1; i++) {
                store(acc[i - i0], out, (long) i * N, accumulate);
            }
        });
    }

    /**
     * {@code out[M,N] (+)= a[R,M]^T · b[R,N]}, the weight gradient {@code dW = dy^T x} that sums
     * over the R rows of a batch.
     *
     * @param a          [R,M]
     * @param b          [R,N]
     * @param out        [M,N]; overwritten, or added to when {@code accumulate}
     * @param accumulate add the product to the existing contents of {@code out}
     */
    public static void matmulTN(MemorySegment a, MemorySegment b, MemorySegment out,
                                int R, int M, int N, boolean accumulate) {
        parallelFor(blocks(M), (long) R * M * N, block -> {
            int m0 = block * ROW_BLOCK;
            int m1 = Math.min(M, m0 + ROW_BLOCK);
            float[][] acc = new float[m1 - m0][N];
            for (int r = 0; r < R; r++) {
                long bRow = (long) r * N;
                for (int m = m0; m < m1; m++) {
                    axpy(a.getAtIndex(F32, (long) r * M + m), b, bRow, acc[m - m0], N);
                }
            }
            for (int m = m0; m < m1; m++) {
                store(acc[m - m0], out, (long) m * N, accumulate);
            }
        });
    }

    // ---------------------------------------------------------------------------------------
    // Embedding
    // ---------------------------------------------------------------------------------------

    /**
     * {@code out[i,:] = table[ids[i],:]}.
     *
     * @param ids   int64 [n] (n = B*T)
     * @param table [V,C]
     * @param out   [n,C]
     * @throws IllegalArgumentException if an id is outside {@code [0, V)}; nothing is written then
     */
    public static void embeddingForward(MemorySegment ids, MemorySegment table, MemorySegment out,
                                        int n, int C, int V) {
        for (int i = 0; i < n; i++) {
            long id = ids.getAtIndex(I64, i);
            if (id < 0 || id >= V) {
                throw new IllegalArgumentException(
                        "token id " + id + " at position " + i + " is outside the vocabulary of " + V);
            }
        }
        long rowBytes = (long) C * Float.BYTES;
        for (int i = 0; i < n; i++) {
            MemorySegment.copy(table, ids.getAtIndex(I64, i) * rowBytes, out, i * rowBytes, rowBytes);
        }
    }

    /** {@link #embeddingForward} from a bfloat16 table: each looked-up row is widened (exactly) to float. */
    public static void embeddingForwardBf16(MemorySegment ids, MemorySegment table, MemorySegment out,
                                            int n, int C, int V) {
        for (int i = 0; i < n; i++) {
            long id = ids.getAtIndex(I64, i);
            if (id < 0 || id >= V) {
                throw new IllegalArgumentException(
                        "token id " + id + " at position " + i + " is outside the vocabulary of " + V);
            }
            long row = id * C;
            for (int c = 0; c < C; c++) {
                short bits = table.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, row + c);
                out.setAtIndex(F32, (long) i * C + c, Float.intBitsToFloat(bits << 16));
            }
        }
    }

    /**
     * {@code dtable[ids[i],:] += dy[i,:]} for i ascending, so repeated ids always sum in the same
     * order. Accumulates: the caller zeroes {@code dtable} first. The ids are the ones the forward
     * pass already validated.
     *
     * @param ids    int64 [n]
     * @param dy     [n,C]
     * @param dtable [V,C]
     */
    public static void embeddingBackward(MemorySegment ids, MemorySegment dy, MemorySegment dtable,
                                         int n, int C) {
        for (int i = 0; i < n; i++) {
            long row = ids.getAtIndex(I64, i) * C;
            for (int c = 0; c < C; c++) {
                long o = row + c;
                dtable.setAtIndex(F32, o, dtable.getAtIndex(F32, o) + dy.getAtIndex(F32, (long) i * C + c));
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Normalisation
    // ---------------------------------------------------------------------------------------

    /**
     * RMSNorm: {@code out = w * (x * rsqrt(mean(x^2) + eps))}, with the two float multiplications
     * in the same order as Hugging Face's LlamaRMSNorm.
     *
     * @param x   [rows,C]
     * @param w   [C]
     * @param out [rows,C]
     */
    public static void rmsNormForward(MemorySegment x, MemorySegment w, MemorySegment out,
                                      int rows, int C, float eps) {
        parallelFor(rows, (long) rows * C, r -> {
            long base = (long) r * C;
            float rstd = (float) rmsRstd(x, base, C, eps);
            for (int c = 0; c < C; c++) {
                out.setAtIndex(F32, base + c, w.getAtIndex(F32, c) * (x.getAtIndex(F32, base + c) * rstd));
            }
        });
    }

    /**
     * Backward of {@link #rmsNormForward}. With {@code r = rsqrt(mean(x^2) + eps)}:
     * {@code dx = r*w*dy - x * r^3 * mean(w*dy*x)} and {@code dw = sum_rows dy * x * r}.
     *
     * @param x            [rows,C]
     * @param w            [C]
     * @param dy           [rows,C]
     * @param dx           [rows,C]; overwritten
     * @param dw           [C]; overwritten, or added to when {@code accumulateDw}
     * @param accumulateDw add to the existing contents of {@code dw} (gradient accumulation)
     */
    public static void rmsNormBackward(MemorySegment x, MemorySegment w, MemorySegment dy,
                                       MemorySegment dx, MemorySegment dw,
                                       int rows, int C, float eps, boolean accumulateDw) {
        double[] rstd = new double[rows];
        parallelFor(rows, (long) rows * C, r -> {
            long base = (long) r * C;
            double rs = rmsRstd(x, base, C, eps);
            rstd[r] = rs;
            double dot = 0;
            for (int c = 0; c < C; c++) {
                dot += (double) w.getAtIndex(F32, c) * dy.getAtIndex(F32, base + c) * x.getAtIndex(F32, base + c);
            }
            double coef = rs * rs * rs * dot / C;
            for (int c = 0; c < C; c++) {
                double g = (double) w.getAtIndex(F32, c) * dy.getAtIndex(F32, base + c);
                dx.setAtIndex(F32, base + c, (float) (rs * g - coef * x.getAtIndex(F32, base + c)));
            }
        });
        // The parameter gradient is a reduction over rows, so it runs on one thread in row order.
        double[] dwAcc = new double[C];
        for (int r = 0; r < rows; r++) {
            long base = (long) r * C;
            for (int c = 0; c < C; c++) {
                dwAcc[c] += (double) dy.getAtIndex(F32, base + c) * x.getAtIndex(F32, base + c) * rstd[r];
            }
        }
        store(dwAcc, dw, accumulateDw);
    }

    /**
     * LayerNorm with biased variance, like {@code torch.nn.functional.layer_norm}:
     * {@code out = (x - mean) / sqrt(var + eps) * w + b}.
     *
     * @param x   [rows,C]
     * @param w   [C]
     * @param b   [C]
     * @param out [rows,C]
     */
    public static void layerNormForward(MemorySegment x, MemorySegment w, MemorySegment b, MemorySegment out,
                                        int rows, int C, float eps) {
        parallelFor(rows, (long) rows * C, r -> {
            long base = (long) r * C;
            double mean = mean(x, base, C);
            double rstd = layerRstd(x, base, C, mean, eps);
            for (int c = 0; c < C; c++) {
                double xhat = (x.getAtIndex(F32, base + c) - mean) * rstd;
                out.setAtIndex(F32, base + c, (float) (xhat * w.getAtIndex(F32, c) + b.getAtIndex(F32, c)));
            }
        });
    }

    /**
     * Backward of {@link #layerNormForward}. With {@code xhat = (x - mean) * rstd} and
     * {@code g = dy * w}: {@code dx = rstd * (g - mean(g) - xhat * mean(g * xhat))},
     * {@code dw = sum_rows dy * xhat}, {@code db = sum_rows dy}.
     *
     * @param x                [rows,C]
     * @param w                [C]
     * @param dy               [rows,C]
     * @param dx               [rows,C]; overwritten
     * @param dw               [C]; overwritten, or added to when {@code accumulateParams}
     * @param db               [C]; overwritten, or added to when {@code accumulateParams}
     * @param accumulateParams add to the existing contents of {@code dw} and {@code db}
     */
    public static void layerNormBackward(MemorySegment x, MemorySegment w, MemorySegment dy,
                                         MemorySegment dx, MemorySegment dw, MemorySegment db,
                                         int rows, int C, float eps, boolean accumulateParams) {
        double[] means = new double[rows];
        double[] rstds = new double[rows];
        parallelFor(rows, (long) rows * C, r -> {
            long base = (long) r * C;
            double mean = mean(x, base, C);
            double rstd = layerRstd(x, base, C, mean, eps);
            means[r] = mean;
            rstds[r] = rstd;
            double gSum = 0;
            double gxhatSum = 0;
            for (int c = 0; c < C; c++) {
                double g = (double) dy.getAtIndex(F32, base + c) * w.getAtIndex(F32, c);
                gSum += g;
                gxhatSum += g * (x.getAtIndex(F32, base + c) - mean) * rstd;
            }
            double gMean = gSum / C;
            double gxhatMean = gxhatSum / C;
            for (int c = 0; c < C; c++) {
                double g = (double) dy.getAtIndex(F32, base + c) * w.getAtIndex(F32, c);
                double xhat = (x.getAtIndex(F32, base + c) - mean) * rstd;
                dx.setAtIndex(F32, base + c, (float) (rstd * (g - gMean - xhat * gxhatMean)));
            }
        });
        // Parameter gradients reduce over rows: one thread, row order.
        double[] dwAcc = new double[C];
        double[] dbAcc = new double[C];
        for (int r = 0; r < rows; r++) {
            long base = (long) r * C;
            for (int c = 0; c < C; c++) {
                double g = dy.getAtIndex(F32, base + c);
                dwAcc[c] += g * (x.getAtIndex(F32, base + c) - means[r]) * rstds[r];
                dbAcc[c] += g;
            }
        }
        store(dwAcc, dw, accumulateParams);
        store(dbAcc, db, accumulateParams);
    }

    // ---------------------------------------------------------------------------------------
    // Rotary position embedding
    // ---------------------------------------------------------------------------------------

    /**
     * Rotary position embedding in the Hugging Face {@code rotate_half} convention:
     * {@code out = x * cos + rotate_half(x) * sin} with {@code rotate_half(x) = cat(-x[D/2:], x[:D/2])},
     * {@code inv_freq[j] = 1 / theta^(2j/D)}, angle {@code t * inv_freq[j]} for position t, and the
     * frequencies repeated over both halves. Angles and trigonometry are evaluated in double and
     * rounded to float once.
     *
     * <p>The rotation is orthogonal, so its backward is the transposed rotation: call with
     * {@code inverse = true} on the output gradient (this negates sin).
     *
     * @param x       [B,H,T,D]
     * @param out     [B,H,T,D]; must not overlap {@code x}
     * @param inverse apply the inverse (transposed) rotation
     * @throws IllegalArgumentException if D is odd or {@code out} overlaps {@code x}
     */
    public static void rope(MemorySegment x, MemorySegment out, int B, int H, int T, int D,
                            double theta, boolean inverse) {
        rope(x, out, B, H, T, D, theta, inverse, null);
    }

    /**
     * As {@link #rope(MemorySegment, MemorySegment, int, int, int, int, double, boolean)}, with the
     * position of each token read from {@code positions} [B,T] (int64) instead of being its index t:
     * packed sequences restart positions at every example, and decoding continues after a cache.
     */
    public static void rope(MemorySegment x, MemorySegment out, int B, int H, int T, int D,
                            double theta, boolean inverse, MemorySegment positions) {
        if (D % 2 != 0) {
            throw new IllegalArgumentException("rope needs an even head size, got D=" + D);
        }
        if (x.asOverlappingSlice(out).isPresent()) {
            throw new IllegalArgumentException("rope needs distinct x and out segments");
        }
        int half = D / 2;
        int maxPosition = T - 1;
        if (positions != null) {
            for (long i = 0; i < (long) B * T; i++) {
                long p = positions.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i);
                if (p < 0 || p > Integer.MAX_VALUE / Math.max(1, half) - 1) {
                    throw new IllegalArgumentException("position " + p + " is out of range");
                }
                maxPosition = Math.max(maxPosition, (int) p);
            }
        }
        int rowsOfTable = maxPosition + 1;
        // cos/sin tables [positions, D/2]: the second half of each row repeats the first.
        float[] cos = new float[rowsOfTable * half];
        float[] sin = new float[rowsOfTable * half];
        for (int j = 0; j < half; j++) {
            double invFreq = 1.0 / Math.pow(theta, (2.0 * j) / D);
            for (int t = 0; t < rowsOfTable; t++) {
                double angle = t * invFreq;
                cos[t * half + j] = (float) Math.cos(angle);
                sin[t * half + j] = (float) (inverse ? -Math.sin(angle) : Math.sin(angle));
            }
        }
        int rows = B * H * T;
        parallelFor(rows, (long) rows * D, row -> {
            long base = (long) row * D;
            int t = row % T;
            int position = positions == null ? t
                    : (int) positions.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, (long) (row / (H * T)) * T + t);
            int tab = position * half;
            for (int j = 0; j < half; j++) {
                float x1 = x.getAtIndex(F32, base + j);
                float x2 = x.getAtIndex(F32, base + j + half);
                float c = cos[tab + j];
                float s = sin[tab + j];
                out.setAtIndex(F32, base + j, x1 * c - x2 * s);
                out.setAtIndex(F32, base + j + half, x2 * c + x1 * s);
            }
        });
    }

    // ---------------------------------------------------------------------------------------
    // Attention
    // ---------------------------------------------------------------------------------------

    /**
     * Scaled dot-product attention with grouped-query heads:
     * {@code out = softmax(q k^T * scale + mask) v}, where query head h reads kv head
     * {@code h / (H / KV)} (as {@code repeat_interleave} of k and v would) and the causal mask hides
     * keys after the query position. Scores are float, the softmax normaliser is a double sum after
     * max subtraction, and only one row of scores per head exists at a time.
     *
     * @param q      [B,H,T,D]
     * @param k      [B,KV,T,D]
     * @param v      [B,KV,T,D]
     * @param out    [B,H,T,D]
     * @param causal mask keys u > t for query t
     * @param scale  score multiplier, usually {@code 1/sqrt(D)}
     * @throws IllegalArgumentException if KV does not divide H
     */
    public static void attentionForward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                                        int B, int H, int KV, int T, int D, boolean causal, float scale) {
        attentionForward(q, k, v, out, B, H, KV, T, D, causal, scale, null);
    }

    /**
     * As above, with {@code segments} [B,T] (int64, or null): a query sees only keys of its own
     * segment, so examples packed into one row do not attend to each other.
     */
    public static void attentionForward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out,
                                        int B, int H, int KV, int T, int D, boolean causal, float scale,
                                        MemorySegment segments) {
        int group = queryHeadsPerKvHead(H, KV);
        parallelFor(B * H, (long) B * H * T * T * D, bh -> {
            int b = bh / H;
            int h = bh % H;
            long qBase = (long) bh * T * D;
            long kvBase = ((long) b * KV + h / group) * T * D;
            AttentionRow row = new AttentionRow(T);
            float[] acc = new float[D];
            for (int t = 0; t < T; t++) {
                long qRow = qBase + (long) t * D;
                int len = causal ? t + 1 : T;
                row.probabilities(q, qRow, k, kvBase, len, D, scale, segments, (long) b * T, t);
                Arrays.fill(acc, 0f);
                for (int u = 0; u < len; u++) {
                    axpy(row.probs[u], v, kvBase + (long) u * D, acc, D);
                }
                store(acc, out, qRow, false);
            }
        });
    }

    /**
     * Backward of {@link #attentionForward}. Probabilities are recomputed row by row exactly as
     * the forward computed them (flash-attention style, no T×T buffer), then
     * {@code dV = P^T dO}, {@code dP = dO V^T}, {@code dS = P ∘ (dP - rowsum(dP ∘ P))},
     * {@code dQ = scale * dS K} and {@code dK = scale * dS^T Q}. dk and dv sum over the H/KV query
     * heads sharing each kv head; one task owns one kv head, so those sums have a fixed order.
     *
     * @param q    [B,H,T,D]
     * @param k    [B,KV,T,D]
     * @param v    [B,KV,T,D]
     * @param dout [B,H,T,D]
     * @param dq   [B,H,T,D]; overwritten
     * @param dk   [B,KV,T,D]; overwritten
     * @param dv   [B,KV,T,D]; overwritten
     * @throws IllegalArgumentException if KV does not divide H
     */
    public static void attentionBackward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment dout,
                                         MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                         int B, int H, int KV, int T, int D, boolean causal, float scale) {
        attentionBackward(q, k, v, dout, dq, dk, dv, B, H, KV, T, D, causal, scale, null);
    }

    /** Backward of the segment-masked forward; {@code segments} [B,T] or null. */
    public static void attentionBackward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment dout,
                                         MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                         int B, int H, int KV, int T, int D, boolean causal, float scale,
                                         MemorySegment segments) {
        int group = queryHeadsPerKvHead(H, KV);
        parallelFor(B * KV, (long) B * H * T * T * D, bkv -> {
            int b = bkv / KV;
            int kvHead = bkv % KV;
            long kvBase = (long) bkv * T * D;
            AttentionRow row = new AttentionRow(T);
            float[] dp = new float[T];
            float[] dqRow = new float[D];
            float[] dkAcc = new float[T * D];
            float[] dvAcc = new float[T * D];
            for (int g = 0; g < group; g++) {
                long qBase = ((long) b * H + (long) kvHead * group + g) * T * D;
                for (int t = 0; t < T; t++) {
                    long qRow = qBase + (long) t * D;
                    int len = causal ? t + 1 : T;
                    row.probabilities(q, qRow, k, kvBase, len, D, scale, segments, (long) b * T, t);
                    double rowSum = 0;
                    for (int u = 0; u < len; u++) {
                        dp[u] = dot(dout, qRow, v, kvBase + (long) u * D, D);
                        rowSum += (double) dp[u] * row.probs[u];
                    }
                    Arrays.fill(dqRow, 0f);
                    for (int u = 0; u < len; u++) {
                        float p = row.probs[u];
                        float ds = p * (float) (dp[u] - rowSum);
                        float dsScaled = ds * scale;
                        long kvRow = kvBase + (long) u * D;
                        int accRow = u * D;
                        for (int d = 0; d < D; d++) {
                            dqRow[d] += ds * k.getAtIndex(F32, kvRow + d);
                            dkAcc[accRow + d] += dsScaled * q.getAtIndex(F32, qRow + d);
                            dvAcc[accRow + d] += p * dout.getAtIndex(F32, qRow + d);
                        }
                    }
                    for (int d = 0; d < D; d++) {
                        dq.setAtIndex(F32, qRow + d, dqRow[d] * scale);
                    }
                }
            }
            store(dkAcc, dk, kvBase, false);
            store(dvAcc, dv, kvBase, false);
        });
    }

    /**
     * Attention of new tokens against a key/value cache, for generation. Writes the new keys and
     * values into the caches at their positions, then computes causal attention of each new query
     * (at position p) over cached keys {@code [0, p]}. Positions of one row must be the next ones
     * after what the cache holds.
     *
     * @param q         [B,H,Tn,D] new queries
     * @param kNew      [B,KV,Tn,D] new keys; {@code vNew} likewise
     * @param kCache    [B,KV,S,D] updated in place; {@code vCache} likewise
     * @param positions [B,Tn] int64 absolute positions, each below S
     * @param out       [B,H,Tn,D]
     */
    public static void cachedAttention(MemorySegment q, MemorySegment kNew, MemorySegment vNew, MemorySegment kCache,
                                       MemorySegment vCache, MemorySegment positions, MemorySegment out,
                                       int B, int H, int KV, int Tn, int S, int D, float scale) {
        int group = queryHeadsPerKvHead(H, KV);
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < Tn; t++) {
                long p = positions.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, (long) b * Tn + t);
                if (p < 0 || p >= S) {
                    throw new IllegalArgumentException("position " + p + " does not fit the cache of " + S);
                }
                for (int h = 0; h < KV; h++) {
                    long src = (((long) b * KV + h) * Tn + t) * D * 4;
                    long dst = (((long) b * KV + h) * S + p) * D * 4;
                    MemorySegment.copy(kNew, src, kCache, dst, (long) D * 4);
                    MemorySegment.copy(vNew, src, vCache, dst, (long) D * 4);
                }
            }
        }
        parallelFor(B * H, (long) B * H * Tn * S * D, bh -> {
            int b = bh / H;
            int h = bh % H;
            long kvBase = ((long) b * KV + h / group) * S * D;
            AttentionRow row = new AttentionRow(S);
            float[] acc = new float[D];
            for (int t = 0; t < Tn; t++) {
                long qRow = ((long) bh * Tn + t) * D;
                int len = (int) positions.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, (long) b * Tn + t) + 1;
                row.probabilities(q, qRow, kCache, kvBase, len, D, scale, null, 0, t);
                Arrays.fill(acc, 0f);
                for (int u = 0; u < len; u++) {
                    axpy(row.probs[u], vCache, kvBase + (long) u * D, acc, D);
                }
                store(acc, out, qRow, false);
            }
        });
    }

    /** Scratch for one softmax row of attention scores; one per task so tasks share nothing. */
    private static final class AttentionRow {
        final float[] scores;
        final double[] exps;
        final float[] probs;

        AttentionRow(int T) {
            scores = new float[T];
            exps = new double[T];
            probs = new float[T];
        }

        /**
         * Fills {@code probs[0, len)} with softmax over keys {@code [0, len)} of query t; with
         * {@code segments}, keys of another segment than the query's get probability 0.
         */
        void probabilities(MemorySegment q, long qRow, MemorySegment k, long kvBase, int len, int D, float scale,
                           MemorySegment segments, long segBase, int t) {
            long own = segments == null ? 0 : segments.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, segBase + t);
            float max = Float.NEGATIVE_INFINITY;
            for (int u = 0; u < len; u++) {
                boolean visible = segments == null
                        || segments.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, segBase + u) == own;
                scores[u] = visible ? dot(q, qRow, k, kvBase + (long) u * D, D) * scale : Float.NEGATIVE_INFINITY;
                max = Math.max(max, scores[u]);
            }
            double sum = 0;
            for (int u = 0; u < len; u++) {
                exps[u] = scores[u] == Float.NEGATIVE_INFINITY ? 0 : Math.exp((double) scores[u] - max);
                sum += exps[u];
            }
            for (int u = 0; u < len; u++) {
                probs[u] = (float) (exps[u] / sum);
            }
        }
    }

    private static int queryHeadsPerKvHead(int H, int KV) {
        if (KV <= 0 || H % KV != 0) {
            throw new IllegalArgumentException("query heads H=" + H + " must be a multiple of kv heads KV=" + KV);
        }
        return H / KV;
    }

    // ---------------------------------------------------------------------------------------
    // Activations (elementwise over n values; evaluated in double, rounded once to float)
    // ---------------------------------------------------------------------------------------

    /** SiLU: {@code out = x * sigmoid(x)}. x, out: [n]. */
    public static void siluForward(MemorySegment x, MemorySegment out, long n) {
        for (long i = 0; i < n; i++) {
            double xi = x.getAtIndex(F32, i);
            out.setAtIndex(F32, i, (float) (xi * sigmoid(xi)));
        }
    }

    /** SwiGLU's gate: {@code out = silu(a) * b}, as silu then mul would round it. a, b, out: [n]. */
    public static void swigluForward(MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        for (long i = 0; i < n; i++) {
            double ai = a.getAtIndex(F32, i);
            out.setAtIndex(F32, i, (float) (ai * sigmoid(ai)) * b.getAtIndex(F32, i));
        }
    }

    /**
     * Backward of {@link #swigluForward}: {@code da = silu'(a) * (dy * b)}, {@code db = dy * silu(a)}, as
     * the unfused mul and silu_grad round them.
     */
    public static void swigluBackward(MemorySegment a, MemorySegment b, MemorySegment dy, MemorySegment da,
                                      MemorySegment db, long n) {
        for (long i = 0; i < n; i++) {
            double ai = a.getAtIndex(F32, i);
            double s = sigmoid(ai);
            float g = dy.getAtIndex(F32, i);
            db.setAtIndex(F32, i, g * (float) (ai * s));
            float gb = g * b.getAtIndex(F32, i);
            da.setAtIndex(F32, i, (float) (gb * s * (1 + ai * (1 - s))));
        }
    }

    /** {@code dx = dy * s * (1 + x * (1 - s))} with {@code s = sigmoid(x)}. x, dy, dx: [n]. */
    public static void siluBackward(MemorySegment x, MemorySegment dy, MemorySegment dx, long n) {
        for (long i = 0; i < n; i++) {
            double xi = x.getAtIndex(F32, i);
            double s = sigmoid(xi);
            dx.setAtIndex(F32, i, (float) (dy.getAtIndex(F32, i) * s * (1 + xi * (1 - s))));
        }
    }

    /**
     * GELU, tanh approximation ({@code gelu_new}, {@code approximate="tanh"}):
     * {@code out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}. x, out: [n].
     */
    public static void geluTanhForward(MemorySegment x, MemorySegment out, long n) {
        for (long i = 0; i < n; i++) {
            double xi = x.getAtIndex(F32, i);
            double th = Math.tanh(SQRT_2_OVER_PI * (xi + GELU_CUBIC * xi * xi * xi));
            out.setAtIndex(F32, i, (float) (0.5 * xi * (1 + th)));
        }
    }

    /** Derivative of {@link #geluTanhForward} times dy. x, dy, dx: [n]. */
    public static void geluTanhBackward(MemorySegment x, MemorySegment dy, MemorySegment dx, long n) {
        for (long i = 0; i < n; i++) {
            double xi = x.getAtIndex(F32, i);
            double th = Math.tanh(SQRT_2_OVER_PI * (xi + GELU_CUBIC * xi * xi * xi));
            double dInner = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * xi * xi);
            double grad = 0.5 * (1 + th) + 0.5 * xi * (1 - th * th) * dInner;
            dx.setAtIndex(F32, i, (float) (dy.getAtIndex(F32, i) * grad));
        }
    }

    /** ReLU: {@code out = max(x, 0)}; NaN stays NaN so divergence remains visible. x, out: [n]. */
    public static void reluForward(MemorySegment x, MemorySegment out, long n) {
        for (long i = 0; i < n; i++) {
            out.setAtIndex(F32, i, Math.max(x.getAtIndex(F32, i), 0f));
        }
    }

    /** {@code dx = x > 0 ? dy : 0} (zero gradient at 0, as PyTorch). x, dy, dx: [n]. */
    public static void reluBackward(MemorySegment x, MemorySegment dy, MemorySegment dx, long n) {
        for (long i = 0; i < n; i++) {
            dx.setAtIndex(F32, i, x.getAtIndex(F32, i) > 0f ? dy.getAtIndex(F32, i) : 0f);
        }
    }

    /** {@code out = tanh(x)}. x, out: [n]. */
    public static void tanhForward(MemorySegment x, MemorySegment out, long n) {
        for (long i = 0; i < n; i++) {
            out.setAtIndex(F32, i, (float) Math.tanh(x.getAtIndex(F32, i)));
        }
    }

    /** {@code dx = dy * (1 - y^2)}, from the forward output y. y, dy, dx: [n]. */
    public static void tanhBackward(MemorySegment y, MemorySegment dy, MemorySegment dx, long n) {
        for (long i = 0; i < n; i++) {
            double yi = y.getAtIndex(F32, i);
            dx.setAtIndex(F32, i, (float) (dy.getAtIndex(F32, i) * (1 - yi * yi)));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Softmax and cross-entropy
    // ---------------------------------------------------------------------------------------

    /**
     * Softmax over the last axis, stabilised by subtracting the row maximum.
     *
     * @param x   [rows,C]
     * @param out [rows,C]
     */
    public static void softmaxForward(MemorySegment x, MemorySegment out, int rows, int C) {
        parallelFor(rows, (long) rows * C, r -> {
            long base = (long) r * C;
            float max = max(x, base, C);
            double sum = sumExp(x, base, C, max);
            for (int c = 0; c < C; c++) {
                out.setAtIndex(F32, base + c, (float) (Math.exp((double) x.getAtIndex(F32, base + c) - max) / sum));
            }
        });
    }

    /**
     * Backward of {@link #softmaxForward} from its output: {@code dx = y * (dy - sum(dy * y))}.
     *
     * @param y  [rows,C]
     * @param dy [rows,C]
     * @param dx [rows,C]
     */
    public static void softmaxBackward(MemorySegment y, MemorySegment dy, MemorySegment dx, int rows, int C) {
        parallelFor(rows, (long) rows * C, r -> {
            long base = (long) r * C;
            double dot = 0;
            for (int c = 0; c < C; c++) {
                dot += (double) dy.getAtIndex(F32, base + c) * y.getAtIndex(F32, base + c);
            }
            for (int c = 0; c < C; c++) {
                double yc = y.getAtIndex(F32, base + c);
                dx.setAtIndex(F32, base + c, (float) (yc * (dy.getAtIndex(F32, base + c) - dot)));
            }
        });
    }

    /**
     * Mean token cross-entropy, {@code F.cross_entropy(logits, targets, ignore_index=ignoreIndex)}:
     * the mean over rows whose target is not {@code ignoreIndex} of {@code logsumexp(row) - row[target]}.
     * Unlike PyTorch, which returns NaN, a batch with no counted row has loss 0.
     *
     * @param logits  [N,V]
     * @param targets int64 [N]
     * @return the mean loss, in double
     * @throws IllegalArgumentException if a target is outside {@code [0, V)} and is not the ignore index
     */
    public static double crossEntropyForward(MemorySegment logits, MemorySegment targets, int N, int V,
                                             long ignoreIndex) {
        checkTargets(targets, N, V, ignoreIndex);
        double[] rowLoss = new double[N];
        parallelFor(N, (long) N * V, r -> {
            long target = targets.getAtIndex(I64, r);
            if (target == ignoreIndex) {
                return;
            }
            long base = (long) r * V;
            float max = max(logits, base, V);
            double logSumExp = max + Math.log(sumExp(logits, base, V, max));
            rowLoss[r] = logSumExp - logits.getAtIndex(F32, base + target);
        });
        // Ignored rows hold 0, so a plain in-order sum is the sum over counted rows.
        double total = 0;
        for (double loss : rowLoss) {
            total += loss;
        }
        int count = countTargets(targets, N, ignoreIndex);
        return count == 0 ? 0.0 : total / count;
    }

    /**
     * Number of rows whose target is not {@code ignoreIndex}: the denominator of the mean loss,
     * which callers accumulating gradients over micro-batches need ahead of time.
     *
     * @param targets int64 [N]
     */
    public static int countTargets(MemorySegment targets, int N, long ignoreIndex) {
        int count = 0;
        for (int r = 0; r < N; r++) {
            if (targets.getAtIndex(I64, r) != ignoreIndex) {
                count++;
            }
        }
        return count;
    }

    /**
     * Gradient of {@code dloss * crossEntropyForward(...)} with respect to the logits:
     * {@code dlogits = dloss * (softmax(logits) - onehot(target)) / count} on counted rows and 0
     * on ignored rows.
     *
     * @param logits  [N,V]
     * @param targets int64 [N]
     * @param dlogits [N,V]; overwritten
     * @param dloss   upstream gradient of the mean loss
     * @throws IllegalArgumentException if a target is outside {@code [0, V)} and is not the ignore index
     */
    public static void crossEntropyBackward(MemorySegment logits, MemorySegment targets, MemorySegment dlogits,
                                            int N, int V, long ignoreIndex, float dloss) {
        checkTargets(targets, N, V, ignoreIndex);
        int count = countTargets(targets, N, ignoreIndex);
        double rowScale = count == 0 ? 0.0 : (double) dloss / count;
        parallelFor(N, (long) N * V, r -> {
            long base = (long) r * V;
            long target = targets.getAtIndex(I64, r);
            if (target == ignoreIndex) {
                dlogits.asSlice(base * Float.BYTES, (long) V * Float.BYTES).fill((byte) 0);
                return;
            }
            float max = max(logits, base, V);
            double sum = sumExp(logits, base, V, max);
            for (int c = 0; c < V; c++) {
                double p = Math.exp((double) logits.getAtIndex(F32, base + c) - max) / sum;
                double g = (c == target ? p - 1 : p) * rowScale;
                dlogits.setAtIndex(F32, base + c, (float) g);
            }
        });
    }

    private static void checkTargets(MemorySegment targets, int N, int V, long ignoreIndex) {
        for (int r = 0; r < N; r++) {
            long target = targets.getAtIndex(I64, r);
            if (target != ignoreIndex && (target < 0 || target >= V)) {
                throw new IllegalArgumentException("target " + target + " at row " + r
                        + " is outside the vocabulary of " + V + " and is not the ignore index " + ignoreIndex);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    /**
     * Runs {@code task(0) ... task(tasks - 1)}, on the current ForkJoinPool (the common pool unless
     * called from inside another pool) when the whole call does enough work to pay for forking.
     * Callers give each task disjoint outputs, so the result is the same either way.
     */
    private static void parallelFor(int tasks, long work, IntConsumer task) {
        if (tasks > 1 && work > PARALLEL_THRESHOLD) {
            IntStream.range(0, tasks).parallel().forEach(task);
        } else {
            for (int i = 0; i < tasks; i++) {
                task.accept(i);
            }
        }
    }

    private static int blocks(int rows) {
        return (rows + ROW_BLOCK - 1) / ROW_BLOCK;
    }

    /** Float dot product summed in index order. */
    private static float dot(MemorySegment a, long aOff, MemorySegment b, long bOff, int n) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            sum += a.getAtIndex(F32, aOff + i) * b.getAtIndex(F32, bOff + i);
        }
        return sum;
    }

    /** {@code acc[0, n) += alpha * x[xOff, xOff + n)}. */
    private static void axpy(float alpha, MemorySegment x, long xOff, float[] acc, int n) {
        for (int i = 0; i < n; i++) {
            acc[i] += alpha * x.getAtIndex(F32, xOff + i);
        }
    }

    /** Writes, or adds, {@code value} to {@code out[index]}. */
    private static void put(MemorySegment out, long index, float value, boolean accumulate) {
        out.setAtIndex(F32, index, accumulate ? out.getAtIndex(F32, index) + value : value);
    }

    /** Writes, or adds, {@code values} to {@code out[off, off + values.length)}. */
    private static void store(float[] values, MemorySegment out, long off, boolean accumulate) {
        for (int i = 0; i < values.length; i++) {
            put(out, off + i, values[i], accumulate);
        }
    }

    /** Writes, or adds, double parameter-gradient sums to {@code out[0, values.length)}, rounding once. */
    private static void store(double[] values, MemorySegment out, boolean accumulate) {
        for (int i = 0; i < values.length; i++) {
            put(out, i, (float) values[i], accumulate);
        }
    }

    private static double rmsRstd(MemorySegment x, long base, int C, float eps) {
        double sumSq = 0;
        for (int c = 0; c < C; c++) {
            double xc = x.getAtIndex(F32, base + c);
            sumSq += xc * xc;
        }
        return 1.0 / Math.sqrt(sumSq / C + eps);
    }

    private static double mean(MemorySegment x, long base, int C) {
        double sum = 0;
        for (int c = 0; c < C; c++) {
            sum += x.getAtIndex(F32, base + c);
        }
        return sum / C;
    }

    /** 1/sqrt(biased variance + eps), from squared deviations so large means do not cancel. */
    private static double layerRstd(MemorySegment x, long base, int C, double mean, float eps) {
        double sumSq = 0;
        for (int c = 0; c < C; c++) {
            double dev = x.getAtIndex(F32, base + c) - mean;
            sumSq += dev * dev;
        }
        return 1.0 / Math.sqrt(sumSq / C + eps);
    }

    private static float max(MemorySegment x, long base, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x.getAtIndex(F32, base + i));
        }
        return max;
    }

    private static double sumExp(MemorySegment x, long base, int n, float max) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp((double) x.getAtIndex(F32, base + i) - max);
        }
        return sum;
    }

    private static double sigmoid(double x) {
        return 1.0 / (1.0 + Math.exp(-x));
    }
}
