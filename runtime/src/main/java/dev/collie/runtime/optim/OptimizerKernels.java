package dev.collie.runtime.optim;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Per-parameter update kernels for optimizers fused into the backward pass: each parameter is
 * updated in place as soon as its gradient is complete, after which the caller frees the
 * gradient. Nothing here keeps gradients or per-element optimizer state across calls, which is
 * what makes full-parameter fine-tuning fit in little memory.
 *
 * <ul>
 *   <li>{@link #lomoUpdate LOMO}: K. Lv et al., "Full Parameter Fine-tuning for Large Language
 *       Models with Limited Resources" (arXiv:2306.09782), Algorithm 1; weight decay as in
 *       OpenLMLab/LOMO {@code lomo_optim/lomo.py}.
 *   <li>{@link #adalomoUpdate AdaLomo}: K. Lv et al., "AdaLomo: Low-memory Optimization with
 *       Adaptive Learning Rate" (arXiv:2310.10195), Algorithm 1; numerics as in CoLLiE
 *       {@code collie/optim/adalomo.py}, {@code AdaLomo.fuse_update}.
 * </ul>
 *
 * <p>All tensors are dense, row-major float32 in little-endian {@link MemorySegment}s. Segments
 * may be larger than needed (slices of an arena); only the first {@code n} elements are touched.
 * The float kernels are single-threaded; the bf16 LOMO update splits its pass into fixed chunks that
 * run in parallel (each element depends only on its own index, so results do not depend on the
 * split). All are allocation-light (AdaLomo allocates one {@code double[cols]} scratch array) and
 * not thread-safe with respect to the same segments.
 */
public final class OptimizerKernels {

    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    /** Float lanes of the vector update, and int lanes of the same count for its bits. */
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;

    /** As many bf16 (short) lanes as {@link #FLOATS} has, in half the bits. */
    private static final VectorSpecies<Short> BF16_LANES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 2));

    /** bf16 values are read and written in the byte order of {@link #BF16}. */
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** Elements per parallel task of the bf16 update (a multiple of every vector length). */
    private static final long UPDATE_CHUNK = 1 << 16;

    /** float32, little-endian, no alignment requirement (segments may come from any offset). */
    private static final ValueLayout.OfFloat F32 =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private OptimizerKernels() {}

    /**
     * Hyperparameters of AdaLomo that are fixed for a run (the learning rate, the weight decay and
     * the grad-norm clip coefficient are per-call arguments of {@link #adalomoUpdate}).
     *
     * @param eps1 added to every squared gradient before it enters the second moments, so that
     *     {@code 1/sqrt(v)} stays finite (CoLLiE {@code eps[0]}, default 1e-30)
     * @param eps2 floor of the relative step size {@code max(eps2, RMS(p))}, so that parameters
     *     initialised at zero can still move (CoLLiE {@code eps[1]}, default 1e-3)
     * @param clipThreshold {@code d} in the grouped update normalisation {@code u / max(1,
     *     RMS(u)/d)} (CoLLiE {@code clip_threshold}, default 1.0)
     * @param decayRate exponent {@code c} of the second-moment decay {@code beta2_t = 1 - t^c}
     *     (CoLLiE {@code decay_rate}, default -0.8); must be {@code <= 0}
     * @param lossScale constant the loss was multiplied by before backward; the kernel divides the
     *     raw gradient by it first (CoLLiE {@code loss_scale}, default 2^14; use 1 for unscaled
     *     gradients)
     * @param clipGradValue if {@code > 0}, the unscaled gradient is clamped to {@code
     *     [-clipGradValue, clipGradValue]} before the clip coefficient is applied (CoLLiE {@code
     *     clip_grad_value}, default {@code None}, represented here as 0)
     */
    public record AdaLomoConfig(
            float eps1,
            float eps2,
            float clipThreshold,
            float decayRate,
            float lossScale,
            float clipGradValue) {

        /** Rejects values for which the update is undefined or not what CoLLiE computes. */
        public AdaLomoConfig {
            requireFinite(eps1 >= 0f, "eps1 must be finite and >= 0", eps1);
            requireFinite(eps2 >= 0f, "eps2 must be finite and >= 0", eps2);
            requireFinite(clipThreshold > 0f, "clipThreshold must be finite and > 0", clipThreshold);
            // A positive exponent would make beta2 negative and the "average" meaningless.
            requireFinite(decayRate <= 0f, "decayRate must be finite and <= 0", decayRate);
            requireFinite(lossScale > 0f, "lossScale must be finite and > 0 (1 = no scaling)", lossScale);
            requireFinite(!Float.isNaN(clipGradValue), "clipGradValue must not be NaN (<= 0 = off)", clipGradValue);
        }

        /**
         * CoLLiE's defaults ({@code collie/optim/adalomo.py}, {@code AdaLomo.__init__}): {@code
         * eps=(1e-30, 1e-3)}, {@code clip_threshold=1.0}, {@code decay_rate=-0.8}, {@code
         * loss_scale=2**14}, {@code clip_grad_value=None}. (The OpenLMLab/LOMO package copy uses
         * {@code loss_scale=2**10}; everything else is identical.)
         *
         * @return the default configuration
         */
        public static AdaLomoConfig defaults() {
            return new AdaLomoConfig(1e-30f, 1e-3f, 1.0f, -0.8f, 16384f, 0f);
        }

        private static void requireFinite(boolean ok, String message, float value) {
            if (!ok || Float.isInfinite(value)) {
                throw new IllegalArgumentException(message + ", got " + value);
            }
        }
    }

    /**
     * One in-place LOMO step (fused SGD) on {@code n} float32 elements:
     *
     * <pre>{@code
     *   step = fl(lr * scale)                      (float32)
     *   p   := p - step * g                        if weightDecay <= 0
     *   p   := p * fl(1 - lr * weightDecay) - step * g   otherwise
     * }</pre>
     *
     * This is LOMO's Algorithm 1 ({@code p <- p - lr * g} inside the backward hook) with the
     * weight decay of OpenLMLab/LOMO {@code Lomo.fuse_update}: {@code p.mul_(1 - lr*wd);
     * p.add_(g, alpha=-lr)}, i.e. decay is applied to the old parameter and is not scaled by the
     * clip coefficient. For SGD this equals L2 regularisation with coefficient {@code wd}. As in
     * LOMO, a non-positive {@code weightDecay} disables decay entirely.
     *
     * <p>{@code g} must already be unscaled (LOMO divides by the dynamic fp16 loss scale and, if
     * configured, clamps by value before anything else); {@code scale} is the grad-norm clip
     * coefficient {@code min(1, clip_grad_norm / (||g||_2 + 1e-6))} from LOMO's separate norm pass,
     * or 1. A caller that does no value clipping may fold {@code 1/lossScale} into {@code scale}.
     *
     * <p>The step is rounded to float32 before it multiplies {@code g}, and each product is
     * rounded separately (Java never fuses multiply-add implicitly), so with {@code weightDecay
     * = 0} the result is bit-identical to {@code p - (lr*scale)*g} evaluated in float32.
     *
     * @param p parameters, updated in place ({@code >= n} floats)
     * @param g gradient, read only ({@code >= n} floats)
     * @param n number of elements
     * @param lr learning rate
     * @param scale gradient multiplier (grad-norm clip coefficient), 1 if none
     * @param weightDecay weight-decay coefficient; {@code <= 0} for none
     */
    public static void lomoUpdate(
            MemorySegment p, MemorySegment g, long n, float lr, float scale, float weightDecay) {
        requireFloatUpdate(p, g, n);
        final float step = lr * scale;
        final float decay = decayFactor(lr, weightDecay);
        final boolean decays = weightDecay > 0f;
        // Vector lanes over fixed chunks, in parallel when there are several (a whole weight's update
        // was one thread's scalar loop, while the other core idled); each product and difference is
        // rounded on its own as in the scalar loop, so the bits are the same.
        forChunks(n, (from, to) -> {
            long i = from;
            long vend = from + ((to - from) / FLOATS.length()) * FLOATS.length();
            FloatVector stepV = FloatVector.broadcast(FLOATS, step);
            FloatVector decayV = FloatVector.broadcast(FLOATS, decay);
            for (; i < vend; i += FLOATS.length()) {
                FloatVector w = FloatVector.fromMemorySegment(FLOATS, p, i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
                FloatVector gi = FloatVector.fromMemorySegment(FLOATS, g, i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
                (decays ? w.mul(decayV) : w).sub(gi.mul(stepV))
                        .intoMemorySegment(p, i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
            }
            updateRange(p, g, i, to, step, decay, decays);
        });
    }

    /**
     * The scalar definition of {@link #lomoUpdate}, single-threaded: the reference its tests compare
     * against, and the loop the vector kernel runs on the tail of each chunk.
     */
    public static void lomoUpdateScalar(MemorySegment p, MemorySegment g, long n, float lr, float scale,
                                        float weightDecay) {
        requireFloatUpdate(p, g, n);
        final float step = lr * scale;
        final float decay = decayFactor(lr, weightDecay);
        updateRange(p, g, 0, n, step, decay, weightDecay > 0f);
    }

    private static void updateRange(MemorySegment p, MemorySegment g, long from, long to, float step, float decay,
                                    boolean decays) {
        for (long i = from; i < to; i++) {
            long off = i * Float.BYTES;
            p.set(F32, off, decays ? p.get(F32, off) * decay - step * g.get(F32, off)
                    : p.get(F32, off) - step * g.get(F32, off));
        }
    }

    /**
     * {@link #lomoUpdate} on bfloat16 weights in one pass: each weight is widened, updated in float
     * and narrowed back with stochastic rounding (the bits of
     * {@link dev.collie.runtime.tensor.Bf16Tensors#randomBits}(seed, i)), the same values as widening,
     * updating and {@link dev.collie.runtime.tensor.Bf16Tensors#narrowStochastic} in turn, without
     * the float copy of the weight.
     *
     * <p>Vector API version of {@link #lomoUpdateBf16Scalar}, bit for bit: the hash is computed in
     * int lanes with the same wrapping arithmetic, the update rounds each product and difference
     * separately as the scalar code does (no fused multiply-add), and the rounding branches become
     * lane blends. It is the largest pass over the weights in a bf16 step, and the scalar loop ran
     * at a third of the float update's speed. Fixed chunks run in parallel; every element depends
     * only on its own index, so results do not depend on the split or the thread count.
     */
    public static void lomoUpdateBf16(MemorySegment p, MemorySegment g, long n, float lr, float scale,
                                      float weightDecay, int seed) {
        requireBf16Update(p, g, n);
        final float step = lr * scale;
        final float decay = decayFactor(lr, weightDecay);
        final boolean decays = weightDecay > 0f;
        forChunks(n, (from, to) -> {
            long i = from;
            long vend = from + ((to - from) / FLOATS.length()) * FLOATS.length();
            FloatVector stepV = FloatVector.broadcast(FLOATS, step);
            FloatVector decayV = FloatVector.broadcast(FLOATS, decay);
            for (; i < vend; i += FLOATS.length()) {
                IntVector stored = (IntVector) ShortVector.fromMemorySegment(BF16_LANES, p, i * 2, NATIVE)
                        .convertShape(VectorOperators.S2I, INTS, 0);
                FloatVector w = stored.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                FloatVector gi = FloatVector.fromMemorySegment(FLOATS, g, i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
                FloatVector updated = (decays ? w.mul(decayV) : w).sub(gi.mul(stepV));
                IntVector random = dev.collie.runtime.tensor.Bf16Tensors.randomBits(seed, i, INTS);
                IntVector narrowed = dev.collie.runtime.tensor.Bf16Tensors.toBf16Stochastic(updated, random);
                narrowed.convertShape(VectorOperators.I2S, BF16_LANES, 0)
                        .intoMemorySegment(p, i * 2, NATIVE);
            }
            updateBf16Range(p, g, i, to, step, decay, decays, seed);
        });
    }

    /**
     * The scalar definition of {@link #lomoUpdateBf16}, single-threaded: the reference its tests
     * compare against, and the loop the vector kernel runs on the tail of each chunk.
     */
    public static void lomoUpdateBf16Scalar(MemorySegment p, MemorySegment g, long n, float lr, float scale,
                                            float weightDecay, int seed) {
        requireBf16Update(p, g, n);
        final float step = lr * scale;
        final float decay = decayFactor(lr, weightDecay);
        updateBf16Range(p, g, 0, n, step, decay, weightDecay > 0f, seed);
    }

    private static void updateBf16Range(MemorySegment p, MemorySegment g, long from, long to, float step,
                                        float decay, boolean decays, int seed) {
        for (long i = from; i < to; i++) {
            float w = Float.intBitsToFloat(p.getAtIndex(BF16, i) << 16);
            float updated = decays ? w * decay - step * g.getAtIndex(F32, i) : w - step * g.getAtIndex(F32, i);
            p.setAtIndex(BF16, i, dev.collie.runtime.checkpoint.Bf16.f32ToBf16Stochastic(updated,
                    dev.collie.runtime.tensor.Bf16Tensors.randomBits(seed, i)));
        }
    }

    /**
     * LOMO's weight-decay factor, 1 without decay: formed in double like Python's {@code 1.0 - lr * wd},
     * then rounded once, as torch does when it multiplies a float32 tensor by a Python float.
     */
    private static float decayFactor(float lr, float weightDecay) {
        return weightDecay > 0f ? (float) (1.0 - (double) lr * weightDecay) : 1f;
    }

    private static void requireFloatUpdate(MemorySegment p, MemorySegment g, long n) {
        if (n < 0) {
            throw new IllegalArgumentException("n must be >= 0, got " + n);
        }
        requireFloats(p, n, "p");
        requireFloats(g, n, "g");
    }

    private static void requireBf16Update(MemorySegment p, MemorySegment g, long n) {
        if (n < 0) {
            throw new IllegalArgumentException("n must be >= 0, got " + n);
        }
        requireFloats(g, n, "g");
        if (p.byteSize() < n * 2) {
            throw new IllegalArgumentException("p holds fewer than " + n + " bf16 values");
        }
    }

    private interface Range {
        void run(long from, long to);
    }

    /**
     * Runs {@code body} over fixed chunks of {@code [0, n)}, in parallel when there is more than
     * one. Chunk boundaries are multiples of the vector length, so the split never changes which
     * elements take the scalar tail.
     */
    private static void forChunks(long n, Range body) {
        long chunks = (n + UPDATE_CHUNK - 1) / UPDATE_CHUNK;
        java.util.stream.LongStream range = java.util.stream.LongStream.range(0, chunks);
        (chunks > 1 ? range.parallel() : range)
                .forEach(c -> body.run(c * UPDATE_CHUNK, Math.min(n, (c + 1) * UPDATE_CHUNK)));
    }

    /**
     * Number of float32 state elements AdaLomo keeps for a {@code rows x cols} parameter: {@code
     * rows + cols} for a matrix (row and column second moments), {@code n} for a vector. This is
     * the only state that survives between steps.
     *
     * @param rows number of rows ({@code >= 1})
     * @param cols number of columns, or 0 for a 1-D parameter of length {@code rows}
     * @return float32 elements of persistent state for that parameter
     */
    public static long adalomoStateElements(int rows, int cols) {
        checkShape(rows, cols);
        return isVector(rows, cols) ? numel(rows, cols) : (long) rows + cols;
    }

    /**
     * One in-place AdaLomo step on a {@code rows x cols} float32 parameter (AdaLomo paper,
     * Algorithm 1; CoLLiE {@code AdaLomo.fuse_update}). With {@code t = step}, {@code n =} number
     * of elements, and all operations element-wise:
     *
     * <pre>{@code
     *   G      = scale * clamp(g / lossScale, +-clipGradValue)        (clamp only if clipGradValue > 0)
     *   beta   = 1 - t^decayRate                                       (beta = 0 at t = 1)
     *   S      = G^2 + eps1
     *   matrix (rows > 1 and cols >= 1), Adafactor-style factored second moment:
     *     R_i  = beta * R_i + (1 - beta) * mean_j S_ij                 rowState, length rows
     *     C_j  = beta * C_j + (1 - beta) * mean_i S_ij                 colState, length cols
     *     V_ij = R_i * C_j / mean_k R_k
     *   vector (cols == 0, or rows == 1):
     *     V_k  = beta * V_k + (1 - beta) * S_k                         fullState, length n
     *   U      = G / sqrt(V)
     *   U      = U / max(1, RMS(U) / clipThreshold)                    grouped update normalisation
     *   eta    = lr * max(eps2, RMS(p_old))                            relative step size
     *   p      = p_old * (1 - eta * weightDecay) - eta * U             decay only if weightDecay > 0
     * }</pre>
     *
     * where {@code RMS(x) = ||x||_2 / sqrt(n)}. The paper writes the factored moment with sums
     * ({@code V = R C / 1^T R}); CoLLiE stores means, which gives the same {@code V} and is what the
     * state segments hold. There is no first moment, no bias correction and no
     * {@code 1/sqrt(t)} step schedule: the caller's learning-rate schedule supplies {@code lr}.
     * Weight decay is decoupled (applied to the parameter, not the gradient) and scaled by the
     * relative step {@code eta}, exactly as CoLLiE does.
     *
     * <p>Gradient pre-processing follows CoLLiE's hook order: divide by the constant loss scale,
     * clamp by value, then multiply by {@code scale}, the coefficient {@code min(1, clip_grad_norm
     * / (||G_all||_2 + 1e-6))} that CoLLiE computes from the unscaled, unclamped gradients of the
     * whole model in a separate backward pass, or 1 when grad-norm clipping is off.
     *
     * <p>A {@code 1 x m} matrix is treated as a vector. CoLLiE factors it (row state of length 1),
     * but then {@code R_0 / mean(R) = 1} exactly and {@code C_j} is the unfactored average, so both
     * forms give the same update; the vector form just skips the useless row state.
     *
     * <p>Reductions (row/column means, RMS values) run in double; states are stored in float32, and
     * {@code V} is read back from the stored float32 states as CoLLiE does. No per-element
     * buffers are allocated for matrices: the update is recomputed in each of three passes over
     * {@code g}.
     *
     * @param p parameters, updated in place ({@code >= n} floats)
     * @param g raw gradient (of {@code loss * cfg.lossScale()}), read only ({@code >= n} floats)
     * @param rows number of rows ({@code >= 1}); the length of a 1-D parameter when {@code cols ==
     *     0}
     * @param cols number of columns, or 0 for a 1-D parameter
     * @param rowState row second moments {@code [rows]} for matrices, zero-initialised before
     *     step 1; unused (may be null) for vectors
     * @param colState column second moments {@code [cols]} for matrices, zero-initialised before
     *     step 1; unused (may be null) for vectors
     * @param fullState second moments {@code [n]} for vectors, zero-initialised before step 1;
     *     must be null for matrices, whose state is O(rows + cols)
     * @param step 1-based optimizer step (CoLLiE increments {@code step_num} before backward)
     * @param lr learning rate {@code eta} before the relative-step scaling
     * @param scale grad-norm clip coefficient, 1 if none
     * @param weightDecay decoupled weight decay; {@code <= 0} for none
     * @param cfg fixed hyperparameters, see {@link AdaLomoConfig#defaults()}
     */
    public static void adalomoUpdate(
            MemorySegment p,
            MemorySegment g,
            int rows,
            int cols,
            MemorySegment rowState,
            MemorySegment colState,
            MemorySegment fullState,
            long step,
            float lr,
            float scale,
            float weightDecay,
            AdaLomoConfig cfg) {
        checkShape(rows, cols);
        if (step < 1) {
            // t^decayRate at t = 0 is infinite; CoLLiE increments the counter before the first step.
            throw new IllegalArgumentException("step is 1-based, got " + step);
        }
        if (cfg == null) {
            throw new NullPointerException("cfg");
        }
        final long n = numel(rows, cols);
        requireFloats(p, n, "p");
        requireFloats(g, n, "g");

        // Python computes the schedule with math.pow in double; so do we.
        final double beta = 1.0 - Math.pow(step, cfg.decayRate());
        final GradTransform gt = new GradTransform(cfg, scale);

        if (isVector(rows, cols)) {
            if (fullState == null) {
                throw new IllegalArgumentException("fullState [" + n + "] is required for a vector");
            }
            requireFloats(fullState, n, "fullState");
            vectorStep(p, g, fullState, n, beta, gt, lr, weightDecay, cfg);
        } else {
            if (fullState != null) {
                throw new IllegalArgumentException(
                        "fullState must be null for a " + rows + "x" + cols
                                + " matrix: its state is rowState + colState (O(rows + cols))");
            }
            if (rowState == null || colState == null) {
                throw new IllegalArgumentException("rowState and colState are required for a matrix");
            }
            requireFloats(rowState, rows, "rowState");
            requireFloats(colState, cols, "colState");
            matrixStep(p, g, rows, cols, rowState, colState, beta, gt, lr, weightDecay, cfg);
        }
    }

    private static void vectorStep(
            MemorySegment p, MemorySegment g, MemorySegment v, long n,
            double beta, GradTransform gt, float lr, float weightDecay, AdaLomoConfig cfg) {
        final double eps1 = cfg.eps1();
        // Pass 1: update the second moment, and gather RMS(U) and RMS(p_old).
        double sumU2 = 0.0;
        double sumP2 = 0.0;
        for (long k = 0; k < n; k++) {
            long off = k * Float.BYTES;
            double gk = gt.apply(g.get(F32, off));
            float vk = (float) (beta * v.get(F32, off) + (1.0 - beta) * (gk * gk + eps1));
            v.set(F32, off, vk);
            double uk = gk / Math.sqrt(vk);
            sumU2 += uk * uk;
            double pk = p.get(F32, off);
            sumP2 += pk * pk;
        }
        final StepCoefficients c = StepCoefficients.of(sumU2, sumP2, n, lr, weightDecay, cfg);
        // Pass 2: apply. U is recomputed from the stored float32 state, as pass 1 saw it.
        for (long k = 0; k < n; k++) {
            long off = k * Float.BYTES;
            double uk = gt.apply(g.get(F32, off)) / Math.sqrt(v.get(F32, off));
            p.set(F32, off, (float) (p.get(F32, off) * c.decay - c.stepPerUnit * uk));
        }
    }

    private static void matrixStep(
            MemorySegment p, MemorySegment g, int rows, int cols,
            MemorySegment rowState, MemorySegment colState,
            double beta, GradTransform gt, float lr, float weightDecay, AdaLomoConfig cfg) {
        final double eps1 = cfg.eps1();
        final long rowBytes = (long) cols * Float.BYTES;
        // Column sums first, then reused for 1/sqrt(C_j): the only O(cols) scratch.
        final double[] colScratch = new double[cols];

        // Pass 1: row/column means of G^2 + eps1 (rows finish in-loop), and RMS(p_old).
        double sumP2 = 0.0;
        for (int i = 0; i < rows; i++) {
            long base = i * rowBytes;
            double rowSum = 0.0;
            for (int j = 0; j < cols; j++) {
                long off = base + (long) j * Float.BYTES;
                double gij = gt.apply(g.get(F32, off));
                double s = gij * gij + eps1;
                rowSum += s;
                colScratch[j] += s;
                double pij = p.get(F32, off);
                sumP2 += pij * pij;
            }
            long roff = (long) i * Float.BYTES;
            rowState.set(F32, roff,
                    (float) (beta * rowState.get(F32, roff) + (1.0 - beta) * (rowSum / cols)));
        }
        for (int j = 0; j < cols; j++) {
            long coff = (long) j * Float.BYTES;
            float cj = (float) (beta * colState.get(F32, coff) + (1.0 - beta) * (colScratch[j] / rows));
            colState.set(F32, coff, cj);
            colScratch[j] = 1.0 / Math.sqrt(cj);
        }
        // V_ij = R_i C_j / mean(R) is never stored: 1/sqrt(V_ij) = rowFactor(i) * colScratch[j].
        double rowStateSum = 0.0;
        for (int i = 0; i < rows; i++) {
            rowStateSum += rowState.get(F32, (long) i * Float.BYTES);
        }
        final double rowMean = rowStateSum / rows;

        // Pass 2: RMS of the unnormalised update U.
        double sumU2 = 0.0;
        for (int i = 0; i < rows; i++) {
            long base = i * rowBytes;
            double rf = rowFactor(rowState, i, rowMean);
            for (int j = 0; j < cols; j++) {
                double u = gt.apply(g.get(F32, base + (long) j * Float.BYTES)) * rf * colScratch[j];
                sumU2 += u * u;
            }
        }
        final StepCoefficients c =
                StepCoefficients.of(sumU2, sumP2, (long) rows * cols, lr, weightDecay, cfg);

        // Pass 3: apply.
        for (int i = 0; i < rows; i++) {
            long base = i * rowBytes;
            double rf = rowFactor(rowState, i, rowMean);
            for (int j = 0; j < cols; j++) {
                long off = base + (long) j * Float.BYTES;
                double u = gt.apply(g.get(F32, off)) * rf * colScratch[j];
                p.set(F32, off, (float) (p.get(F32, off) * c.decay - c.stepPerUnit * u));
            }
        }
    }

    /** {@code 1/sqrt(R_i / mean(R))}, CoLLiE's {@code r_factor} (fairseq's _approx_sq_grad). */
    private static double rowFactor(MemorySegment rowState, int i, double rowMean) {
        return 1.0 / Math.sqrt(rowState.get(F32, (long) i * Float.BYTES) / rowMean);
    }

    /**
     * CoLLiE's gradient pre-processing: unscale, clamp by value, apply the clip coefficient. Kept
     * as one function so that every pass sees exactly the same G.
     */
    private record GradTransform(double lossScale, double clipValue, double scale) {
        GradTransform(AdaLomoConfig cfg, float scale) {
            this(cfg.lossScale(), cfg.clipGradValue() > 0f ? cfg.clipGradValue() : 0.0, scale);
        }

        double apply(float raw) {
            double x = raw / lossScale;
            if (clipValue > 0.0) {
                // NaN passes through, as with torch.clamp_.
                x = x < -clipValue ? -clipValue : (x > clipValue ? clipValue : x);
            }
            return x * scale;
        }
    }

    /** The two scalars of the final write {@code p <- p * decay - stepPerUnit * U}. */
    private record StepCoefficients(double decay, double stepPerUnit) {
        static StepCoefficients of(
                double sumU2, double sumP2, long n, float lr, float weightDecay, AdaLomoConfig cfg) {
            double rmsU = Math.sqrt(sumU2 / n);
            double clipDivisor = Math.max(1.0, rmsU / cfg.clipThreshold());
            double eta = lr * Math.max(cfg.eps2(), Math.sqrt(sumP2 / n));
            double decay = weightDecay > 0f ? 1.0 - eta * weightDecay : 1.0;
            return new StepCoefficients(decay, eta / clipDivisor);
        }
    }

    private static boolean isVector(int rows, int cols) {
        return cols == 0 || rows == 1;
    }

    private static long numel(int rows, int cols) {
        return cols == 0 ? rows : (long) rows * cols;
    }

    private static void checkShape(int rows, int cols) {
        if (rows < 1 || cols < 0) {
            throw new IllegalArgumentException(
                    "need rows >= 1 and cols >= 0 (0 = vector), got " + rows + "x" + cols);
        }
    }

    private static void requireFloats(MemorySegment s, long count, String name) {
        if (s == null) {
            throw new NullPointerException(name);
        }
        if (s.byteSize() / Float.BYTES < count) {
            throw new IllegalArgumentException(
                    name + " holds " + s.byteSize() / Float.BYTES + " floats, need " + count);
        }
    }
}
