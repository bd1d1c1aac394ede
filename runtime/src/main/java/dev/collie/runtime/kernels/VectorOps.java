package dev.collie.runtime.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API versions of the elementwise kernels, each tested against its scalar reference
 * ({@link CpuKernels} or the CPU backend's loops): binary ops with trailing-axis broadcasting and
 * SiLU forward and backward. Work is split in fixed chunks, so results do not depend on threads.
 */
public final class VectorOps {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final int CHUNK = 1 << 14;
    private static final FloatVector ONE = FloatVector.broadcast(S, 1f);

    private VectorOps() {}

    /** Ops of {@link #binary}. */
    public enum Op { ADD, SUB, MUL, DIV }

    /**
     * out[i] = a[i] op b[i mod nb] for a of n floats and b of nb floats (nb divides n; nb = n is the
     * plain elementwise case, nb = 1 a scalar, otherwise b repeats over a's leading axes). With
     * {@code bFirst} the operands swap roles: out[i] = b[i mod nb] op a[i].
     */
    public static void binary(Op op, MemorySegment a, MemorySegment b, MemorySegment out, long n, long nb,
                              boolean bFirst) {
        forChunks(n, (from, to) -> {
            long i = from;
            if (nb == 1) {
                // a scalar operand: one broadcast vector
                float c = b.getAtIndex(CpuKernels.F32, 0);
                FloatVector y = FloatVector.broadcast(S, c);
                long vend = from + ((to - from) / S.length()) * S.length();
                for (; i < vend; i += S.length()) {
                    FloatVector x = FloatVector.fromMemorySegment(S, a, i * 4, ORDER);
                    apply(op, bFirst ? y : x, bFirst ? x : y).intoMemorySegment(out, i * 4, ORDER);
                }
                for (; i < to; i++) {
                    float x = a.getAtIndex(CpuKernels.F32, i);
                    out.setAtIndex(CpuKernels.F32, i, bFirst ? scalar(op, c, x) : scalar(op, x, c));
                }
            } else if (nb == n || nb >= S.length()) {
                for (; i < to; ) {
                    long j = i % nb;
                    long run = Math.min(to - i, nb - j);
                    long end = i + run;
                    long vend = i + (run / S.length()) * S.length();
                    for (; i < vend; i += S.length(), j += S.length()) {
                        FloatVector x = FloatVector.fromMemorySegment(S, a, i * 4, ORDER);
                        FloatVector y = FloatVector.fromMemorySegment(S, b, j * 4, ORDER);
                        apply(op, bFirst ? y : x, bFirst ? x : y).intoMemorySegment(out, i * 4, ORDER);
                    }
                    for (; i < end; i++, j++) {
                        out.setAtIndex(CpuKernels.F32, i, scalar(op, bFirst ? b.getAtIndex(CpuKernels.F32, j)
                                : a.getAtIndex(CpuKernels.F32, i), bFirst ? a.getAtIndex(CpuKernels.F32, i)
                                : b.getAtIndex(CpuKernels.F32, j)));
                    }
                }
            } else {
                for (; i < to; i++) {
                    float x = a.getAtIndex(CpuKernels.F32, i);
                    float y = b.getAtIndex(CpuKernels.F32, i % nb);
                    out.setAtIndex(CpuKernels.F32, i, bFirst ? scalar(op, y, x) : scalar(op, x, y));
                }
            }
        });
    }

    private static FloatVector apply(Op op, FloatVector x, FloatVector y) {
        return switch (op) {
            case ADD -> x.add(y);
            case SUB -> x.sub(y);
            case MUL -> x.mul(y);
            case DIV -> x.div(y);
        };
    }

    static float scalar(Op op, float x, float y) {
        return switch (op) {
            case ADD -> x + y;
            case SUB -> x - y;
            case MUL -> x * y;
            case DIV -> x / y;
        };
    }

    /** out = x * sigmoid(x), in float with the vector exp. */
    public static void siluForward(MemorySegment x, MemorySegment out, long n) {
        forChunks(n, (from, to) -> {
            long i = from;
            long vend = from + ((to - from) / S.length()) * S.length();
            for (; i < vend; i += S.length()) {
                FloatVector v = FloatVector.fromMemorySegment(S, x, i * 4, ORDER);
                FloatVector sig = sigmoid(v);
                v.mul(sig).intoMemorySegment(out, i * 4, ORDER);
            }
            for (; i < to; i++) {
                float v = x.getAtIndex(CpuKernels.F32, i);
                out.setAtIndex(CpuKernels.F32, i, (float) (v / (1 + Math.exp(-v))));
            }
        });
    }

    /** dx = dy * s * (1 + x * (1 - s)) with s = sigmoid(x). */
    public static void siluBackward(MemorySegment x, MemorySegment dy, MemorySegment dx, long n) {
        forChunks(n, (from, to) -> {
            long i = from;
            long vend = from + ((to - from) / S.length()) * S.length();
            for (; i < vend; i += S.length()) {
                FloatVector v = FloatVector.fromMemorySegment(S, x, i * 4, ORDER);
                FloatVector g = FloatVector.fromMemorySegment(S, dy, i * 4, ORDER);
                FloatVector s = sigmoid(v);
                FloatVector d = s.mul(v.mul(s.neg().add(1f)).add(1f));
                g.mul(d).intoMemorySegment(dx, i * 4, ORDER);
            }
            for (; i < to; i++) {
                double v = x.getAtIndex(CpuKernels.F32, i);
                double s = 1 / (1 + Math.exp(-v));
                dx.setAtIndex(CpuKernels.F32, i, (float) (dy.getAtIndex(CpuKernels.F32, i) * s * (1 + v * (1 - s))));
            }
        });
    }

    /**
     * SwiGLU's gate, fused: {@code out = silu(a) * b}, one pass instead of silu then mul (and no
     * silu(a) buffer). Scalar reference: {@link CpuKernels#swigluForward}.
     */
    public static void swigluForward(MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        forChunks(n, (from, to) -> {
            long i = from;
            long vend = from + ((to - from) / S.length()) * S.length();
            for (; i < vend; i += S.length()) {
                FloatVector x = FloatVector.fromMemorySegment(S, a, i * 4, ORDER);
                FloatVector y = FloatVector.fromMemorySegment(S, b, i * 4, ORDER);
                FloatVector sig = sigmoid(x);
                x.mul(sig).mul(y).intoMemorySegment(out, i * 4, ORDER);
            }
            for (; i < to; i++) {
                double x = a.getAtIndex(CpuKernels.F32, i);
                float silu = (float) (x / (1 + Math.exp(-x)));
                out.setAtIndex(CpuKernels.F32, i, silu * b.getAtIndex(CpuKernels.F32, i));
            }
        });
    }

    /**
     * Backward of {@link #swigluForward}: with {@code s = sigmoid(a)},
     * {@code da = dy * b * s * (1 + a * (1 - s))} and {@code db = dy * a * s}, in one pass.
     */
    public static void swigluBackward(MemorySegment a, MemorySegment b, MemorySegment dy, MemorySegment da,
                                      MemorySegment db, long n) {
        forChunks(n, (from, to) -> {
            long i = from;
            long vend = from + ((to - from) / S.length()) * S.length();
            for (; i < vend; i += S.length()) {
                FloatVector x = FloatVector.fromMemorySegment(S, a, i * 4, ORDER);
                FloatVector y = FloatVector.fromMemorySegment(S, b, i * 4, ORDER);
                FloatVector g = FloatVector.fromMemorySegment(S, dy, i * 4, ORDER);
                FloatVector s = sigmoid(x);
                FloatVector silu = x.mul(s);
                g.mul(silu).intoMemorySegment(db, i * 4, ORDER);
                FloatVector d = s.mul(x.mul(s.neg().add(1f)).add(1f));
                g.mul(y).mul(d).intoMemorySegment(da, i * 4, ORDER);
            }
            for (; i < to; i++) {
                double x = a.getAtIndex(CpuKernels.F32, i);
                double s = 1 / (1 + Math.exp(-x));
                float g = dy.getAtIndex(CpuKernels.F32, i);
                db.setAtIndex(CpuKernels.F32, i, g * (float) (x * s));
                da.setAtIndex(CpuKernels.F32, i, (float) (g * b.getAtIndex(CpuKernels.F32, i) * s * (1 + x * (1 - s))));
            }
        });
    }

    private static final float GELU_C0 = (float) Math.sqrt(2 / Math.PI);
    private static final float GELU_C1 = (float) (Math.sqrt(2 / Math.PI) * 0.044715);

    /**
     * GELU, tanh form: {@code 0.5 x (1 + tanh(u))} with {@code u = sqrt(2/pi) (x + 0.044715 x^3)}, computed as
     * {@code x sigmoid(2u)} (the same function, since {@code 1 + tanh(u) = 2 sigmoid(2u)}) in float with the
     * deterministic vector exp. Scalar reference: {@link CpuKernels#geluTanhForward} (in double).
     */
    public static FloatVector geluTanh(FloatVector x) {
        FloatVector u2 = x.mul(x).fma(GELU_C1, GELU_C0).mul(x).mul(-2f);
        return x.div(VectorMath.exp(u2).add(1f));
    }

    /** {@code out = geluTanh(x)}, every element through the vector formula (a masked vector for the tail). */
    public static void geluTanhForward(MemorySegment x, MemorySegment out, long n) {
        forChunks(n, (from, to) -> geluTanhSpan(x, out, from, to));
    }

    /**
     * The GEMM epilogue of {@code linear_gelu}: {@code act[r, c] = geluTanh(pre[r, c])} for the block of rows
     * {@code [row0, row0 + rows)} and columns {@code [col0, col0 + cols)} of two row-major matrices {@code ld}
     * floats wide. Element for element the same as {@link #geluTanhForward}, wherever a block starts.
     */
    public static void geluTanhBlock(MemorySegment pre, MemorySegment act, long ld, int row0, int rows, int col0,
                                     int cols) {
        for (int r = row0; r < row0 + rows; r++) {
            long base = r * ld + col0;
            geluTanhSpan(pre, act, base, base + cols);
        }
    }

    private static void geluTanhSpan(MemorySegment x, MemorySegment out, long from, long to) {
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            geluTanh(FloatVector.fromMemorySegment(S, x, i * 4, ORDER)).intoMemorySegment(out, i * 4, ORDER);
        }
        if (i < to) {
            // A masked vector, not scalar code: an element's bits must not depend on where a span ends.
            var mask = S.indexInRange(0, (int) (to - i));
            geluTanh(FloatVector.fromMemorySegment(S, x, i * 4, ORDER, mask)).intoMemorySegment(out, i * 4, ORDER, mask);
        }
    }

    /** 1 / (1 + e^-x), with the deterministic vector exp. */
    private static FloatVector sigmoid(FloatVector x) {
        return ONE.div(VectorMath.exp(x.neg()).add(1f));
    }

    private interface Range {
        void run(long from, long to);
    }

    private static void forChunks(long n, Range body) {
        int chunks = (int) ((n + CHUNK - 1) / CHUNK);
        IntStream range = IntStream.range(0, chunks);
        (chunks > 1 ? range.parallel() : range).forEach(c -> body.run((long) c * CHUNK, Math.min(n, (long) (c + 1) * CHUNK)));
    }
}
