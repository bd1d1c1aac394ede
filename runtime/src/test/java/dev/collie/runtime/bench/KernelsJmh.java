package dev.collie.runtime.bench;

import dev.collie.runtime.kernels.CpuKernels;
import dev.collie.runtime.kernels.FlashAttention;
import dev.collie.runtime.kernels.FusedKernels;
import dev.collie.runtime.kernels.FusedNorms;
import dev.collie.runtime.kernels.FusedRope;
import dev.collie.runtime.kernels.SimdGemm;
import dev.collie.runtime.kernels.VectorOps;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH microbenchmarks of the CPU kernels at the shapes of the 15m LLaMA preset (B=8, T=256, C=288,
 * 6 heads of 48, hidden 768, vocabulary 32000): each fast kernel beside its scalar reference (or,
 * for bf16 weights, beside the float kernel). Pick some with a regular expression, e.g.
 * {@code org.openjdk.jmh.Main 'KernelsJmh.swiglu.*'}.
 *
 * <pre>
 * ./mvnw -q -pl runtime -am test-compile -DskipTests
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *   -cp runtime/target/test-classes:runtime/target/classes:$(cat runtime/target/test-classpath.txt) \
 *   org.openjdk.jmh.Main KernelsJmh
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class KernelsJmh {

    static final int B = 8, T = 256, C = 288, H = 6, D = 48, HIDDEN = 768, V = 32000;

    private Arena arena;
    private MemorySegment x, w, y, q, k, v, o, dq, dk, dv, lse, rot, targets, h, wHead, dh, dwHead, xk, xv, xo;

    private MemorySegment random(long floats, SplittableRandom rng) {
        MemorySegment s = arena.allocate(floats * 4, 64);
        for (long i = 0; i < floats; i++) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rng.nextDouble() * 2 - 1));
        }
        return s;
    }

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        SplittableRandom rng = new SplittableRandom(1);
        x = random((long) B * T * C, rng);
        w = random((long) HIDDEN * C, rng);
        y = random((long) B * T * HIDDEN, rng);
        q = random((long) B * H * T * D, rng);
        k = random((long) B * H * T * D, rng);
        v = random((long) B * H * T * D, rng);
        o = random((long) B * H * T * D, rng);
        dq = random((long) B * H * T * D, rng);
        dk = random((long) B * H * T * D, rng);
        dv = random((long) B * H * T * D, rng);
        rot = random((long) B * H * T * D, rng);
        xk = random((long) B * T * C, rng);
        xv = random((long) B * T * C, rng);
        xo = random((long) B * T * C, rng);
        lse = arena.allocate((long) B * H * T * Float.BYTES, 64);
        FlashAttention.forward(q, k, v, dq, B, H, H, T, D, true, 0.144f, null, lse);
        h = random((long) 512 * C, rng);
        wHead = random((long) V * C, rng);
        dh = random((long) 512 * C, rng);
        dwHead = random((long) V * C, rng);
        targets = arena.allocate(512L * 8, 8);
        for (int i = 0; i < 512; i++) {
            targets.setAtIndex(ValueLayout.JAVA_LONG, i, rng.nextInt(V));
        }
        setUpFused();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public void linearScalar() {
        CpuKernels.matmulNT(x, w, y, B * T, HIDDEN, C, false);
    }

    @Benchmark
    public void attentionForwardScalar() {
        CpuKernels.attentionForward(q, k, v, o, B, H, H, T, D, true, 0.144f);
    }

    @Benchmark
    public void attentionForwardFlash() {
        FlashAttention.forward(q, k, v, o, B, H, H, T, D, true, 0.144f, null);
    }

    @Benchmark
    public void attentionBackwardScalar() {
        CpuKernels.attentionBackward(q, k, v, o, dq, dk, dv, B, H, H, T, D, true, 0.144f);
    }

    @Benchmark
    public void attentionBackwardFlash() {
        FlashAttention.backward(q, k, v, o, o, dq, dk, dv, B, H, H, T, D, true, 0.144f, null, null);
    }

    /** The backward as training runs it: with the forward's log-sum-exp, no q·k^T recomputation. */
    @Benchmark
    public void attentionBackwardFlashWithLse() {
        FlashAttention.backward(q, k, v, o, o, dq, dk, dv, B, H, H, T, D, true, 0.144f, null, lse);
    }

    @Benchmark
    public void ropeScalar() {
        CpuKernels.rope(q, rot, B, H, T, D, 10000.0, false);
    }

    @Benchmark
    public void ropeCached() {
        FusedRope.rope(q, rot, B, H, T, D, 10000.0, false);
    }

    @Benchmark
    public double headCrossEntropy512Tokens() {
        return FusedKernels.linearCrossEntropy(h, wHead, targets, dh, dwHead, 512, C, V, -100);
    }

    /** The head with LOMO fused in: dW a vocabulary tile at a time, each applied at once (no [V, C] gradient). */
    @Benchmark
    public double headCrossEntropyUpdate512Tokens() {
        MemorySegment workspace = headWorkspace;
        return FusedKernels.linearCrossEntropyUpdate(h, wHead, false, targets, dh, 512, C, V, -100, workspace,
                (first, rows, g) -> dev.collie.runtime.optim.OptimizerKernels.lomoUpdate(
                        wHead.asSlice(first * C * 4, (long) rows * C * 4), g, (long) rows * C, 0f, 1f, 0f));
    }

    @Benchmark
    public void geluScalar() {
        CpuKernels.geluTanhForward(y, act, (long) B * T * HIDDEN);
    }

    @Benchmark
    public void geluVector() {
        VectorOps.geluTanhForward(y, act, (long) B * T * HIDDEN);
    }

    /** linear then a separate GELU pass, against the GEMM applying GELU to each block as it finishes it. */
    @Benchmark
    public void linearThenGelu() {
        SimdGemm.matmulNT(x, wF32, y, B * T, HIDDEN, C, false);
        VectorOps.geluTanhForward(y, act, (long) B * T * HIDDEN);
    }

    @Benchmark
    public void linearGeluEpilogue() {
        SimdGemm.matmulNT(x, wF32, false, y, B * T, HIDDEN, C, false,
                (row0, rows, col0, cols) -> VectorOps.geluTanhBlock(y, act, HIDDEN, row0, rows, col0, cols));
    }

    @Benchmark
    public void layerNormForwardScalar() {
        CpuKernels.layerNormForward(x, normW, dNormW, normOut, B * T, C, 1e-5f);
    }

    @Benchmark
    public void layerNormForwardVector() {
        FusedNorms.layerNormForward(x, normW, dNormW, normOut, B * T, C, 1e-5f);
    }

    @Benchmark
    public void layerNormBackwardScalar() {
        CpuKernels.layerNormBackward(x, normW, normOut, dq, dNormW, dNormB, B * T, C, 1e-5f, false);
    }

    @Benchmark
    public void layerNormBackwardVector() {
        FusedNorms.layerNormBackward(x, normW, normOut, dq, dNormW, dNormB, B * T, C, 1e-5f);
    }

    // ---- kernels of the fusion passes, each beside its scalar reference --------------------------

    private MemorySegment gate, up, act, dGate, dUp, normW, normOut, dNormW, dNormB, wBf16, wF32, pBf16, grad,
            headWorkspace;

    private void setUpFused() {
        SplittableRandom rng = new SplittableRandom(2);
        gate = random((long) B * T * HIDDEN, rng);
        up = random((long) B * T * HIDDEN, rng);
        act = random((long) B * T * HIDDEN, rng);
        dGate = random((long) B * T * HIDDEN, rng);
        dUp = random((long) B * T * HIDDEN, rng);
        normW = random(C, rng);
        normOut = random((long) B * T * C, rng);
        dNormW = random(C, rng);
        dNormB = random(C, rng);
        headWorkspace = arena.allocate(dev.collie.compiler.ops.OpRules.headUpdateWorkspaceFloats(512, V, C) * 4, 64);
        wF32 = random((long) HIDDEN * C, rng);
        wBf16 = arena.allocate((long) HIDDEN * C * 2, 64);
        pBf16 = arena.allocate((long) V * C * 2, 64);
        for (long i = 0; i < (long) HIDDEN * C; i++) {
            wBf16.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(wF32.getAtIndex(
                    ValueLayout.JAVA_FLOAT, i)) >>> 16));
        }
        grad = random((long) V * C, rng);
    }

    @Benchmark
    public void swigluForwardScalar() {
        CpuKernels.swigluForward(gate, up, act, (long) B * T * HIDDEN);
    }

    @Benchmark
    public void swigluForwardFused() {
        VectorOps.swigluForward(gate, up, act, (long) B * T * HIDDEN);
    }

    @Benchmark
    public void swigluBackwardScalar() {
        CpuKernels.swigluBackward(gate, up, act, dGate, dUp, (long) B * T * HIDDEN);
    }

    @Benchmark
    public void swigluBackwardFused() {
        VectorOps.swigluBackward(gate, up, act, dGate, dUp, (long) B * T * HIDDEN);
    }

    @Benchmark
    public void rmsNormForwardScalar() {
        CpuKernels.rmsNormForward(x, normW, normOut, B * T, C, 1e-5f);
    }

    @Benchmark
    public void rmsNormForwardVector() {
        FusedNorms.rmsNormForward(x, normW, normOut, B * T, C, 1e-5f);
    }

    @Benchmark
    public void rmsNormBackwardScalar() {
        CpuKernels.rmsNormBackward(x, normW, normOut, dq, dNormW, B * T, C, 1e-5f, false);
    }

    @Benchmark
    public void rmsNormBackwardVector() {
        FusedNorms.rmsNormBackward(x, normW, normOut, dq, dNormW, B * T, C, 1e-5f);
    }

    /**
     * The attention of a training step as FuseRotaryAttention leaves it: q, k, v read token-major
     * ([B, T, H*D], here the x-sized buffers), q and k rotated as the tiles load, the output written
     * token-major. Compare with ropeSplitHeadsFused (x2 for q and k) + a split of v + attentionForwardFlash.
     */
    @Benchmark
    public void rotaryAttentionForwardTokenMajor() {
        FlashAttention.forwardTokenMajor(x, xk, xv, xo, B, H, H, T, D, true, 0.144f, null, lse,
                new FlashAttention.Rotary(10000.0, null));
    }

    /** Its backward: dq and dk rotated back and dv written token-major, with the forward's lse. */
    @Benchmark
    public void rotaryAttentionBackwardTokenMajor() {
        FlashAttention.backwardTokenMajor(x, xk, xv, xo, xo, dq, dk, dv, B, H, H, T, D, true, 0.144f, null, lse,
                new FlashAttention.Rotary(10000.0, null));
    }

    @Benchmark
    public void ropeSplitHeadsFused() {
        FusedRope.rope(x, true, rot, false, B, H, T, D, 10000.0, false, null);
    }

    @Benchmark
    public void linearFloatWeights() {
        SimdGemm.matmulNT(x, wF32, y, B * T, HIDDEN, C, false);
    }

    @Benchmark
    public void linearBf16Weights() {
        SimdGemm.matmulNTBf16(x, wBf16, y, B * T, HIDDEN, C, false);
    }

    @Benchmark
    public void lomoUpdateFloatHead() {
        dev.collie.runtime.optim.OptimizerKernels.lomoUpdate(dwHead, grad, (long) V * C, 1e-7f, 1f, 0f);
    }

    @Benchmark
    public void lomoUpdateBf16HeadStochasticScalar() {
        dev.collie.runtime.optim.OptimizerKernels.lomoUpdateBf16Scalar(pBf16, grad, (long) V * C, 1e-7f, 1f, 0f, 7);
    }

    @Benchmark
    public void lomoUpdateBf16HeadStochastic() {
        dev.collie.runtime.optim.OptimizerKernels.lomoUpdateBf16(pBf16, grad, (long) V * C, 1e-7f, 1f, 0f, 7);
    }

    // ---- float vs bf16 weights at the 1b preset's MLP shapes (one sequence of 256 tokens) ------

    /**
     * Operands of the 1b preset's up projection: x [256, 2048], W [5632, 2048] in float and in
     * bf16, and the gradient [256, 5632] that the backward multiplies by W. With few rows the
     * packing of W is a larger share of a product than at the 15m shapes above.
     */
    @State(Scope.Benchmark)
    public static class Mlp1b {
        static final int M = 256, K = 2048, N = 5632;
        Arena arena;
        MemorySegment x, wF32, wBf16, dy, out, dx, grad;

        @Setup(Level.Trial)
        public void setUp() {
            arena = Arena.ofShared();
            SplittableRandom rng = new SplittableRandom(3);
            x = arena.allocate((long) M * K * 4, 64);
            dy = arena.allocate((long) M * N * 4, 64);
            wF32 = arena.allocate((long) N * K * 4, 64);
            wBf16 = arena.allocate((long) N * K * 2, 64);
            out = arena.allocate((long) M * N * 4, 64);
            dx = arena.allocate((long) M * K * 4, 64);
            grad = arena.allocate((long) N * K * 4, 64);
            for (long i = 0; i < (long) M * K; i++) {
                x.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rng.nextDouble(-1, 1));
            }
            for (long i = 0; i < (long) M * N; i++) {
                dy.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rng.nextDouble(-1, 1));
            }
            for (long i = 0; i < (long) N * K; i++) {
                short h = (short) rng.nextInt(0x3C00, 0x3D00); // bf16 in [2^-7, 2^-5)
                wBf16.setAtIndex(ValueLayout.JAVA_SHORT, i, rng.nextBoolean() ? h : (short) (h | 0x8000));
                wF32.setAtIndex(ValueLayout.JAVA_FLOAT, i, Float.intBitsToFloat(wBf16.getAtIndex(
                        ValueLayout.JAVA_SHORT, i) << 16));
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            arena.close();
        }
    }

    @Benchmark
    public void linear1bFloatWeights(Mlp1b s) {
        SimdGemm.matmulNT(s.x, s.wF32, s.out, Mlp1b.M, Mlp1b.N, Mlp1b.K, false);
    }

    @Benchmark
    public void linear1bBf16Weights(Mlp1b s) {
        SimdGemm.matmulNTBf16(s.x, s.wBf16, s.out, Mlp1b.M, Mlp1b.N, Mlp1b.K, false);
    }

    @Benchmark
    public void linearInputGrad1bFloatWeights(Mlp1b s) {
        SimdGemm.matmulNN(s.dy, s.wF32, s.dx, Mlp1b.M, Mlp1b.K, Mlp1b.N, false);
    }

    @Benchmark
    public void linearInputGrad1bBf16Weights(Mlp1b s) {
        SimdGemm.matmulNNBf16(s.dy, s.wBf16, s.dx, Mlp1b.M, Mlp1b.K, Mlp1b.N, false);
    }

    /**
     * The up projection's weight gradient with its LOMO update, separate (the [5632, 2048] gradient
     * written, then read back by the update) and fused as FuseWeightUpdate runs it (each block updated
     * by the GEMM task that computed it, while in cache). The weight is out, used as [N, K] here.
     */
    @Benchmark
    public void weightGradientThenUpdate1b(Mlp1b s) {
        SimdGemm.matmulTN(s.dy, s.x, s.grad, Mlp1b.M, Mlp1b.N, Mlp1b.K, false);
        dev.collie.runtime.optim.OptimizerKernels.lomoUpdate(s.wF32, s.grad, (long) Mlp1b.N * Mlp1b.K, 1e-9f, 1f, 0f);
    }

    @Benchmark
    public void weightGradientBlocksUpdated1b(Mlp1b s) {
        dev.collie.runtime.kernels.FusedKernels.weightGradientByBlocks(s.dy, s.x, Mlp1b.M, Mlp1b.N, Mlp1b.K, null,
                (row0, rows, col0, cols, g, offset, ld) -> {
                    for (int r = 0; r < rows; r++) {
                        dev.collie.runtime.optim.OptimizerKernels.lomoUpdate(
                                s.wF32.asSlice(((long) (row0 + r) * Mlp1b.K + col0) * 4, cols * 4L),
                                g.asSlice((offset + r * ld) * 4, cols * 4L), cols, 1e-9f, 1f, 0f);
                    }
                });
    }
}
