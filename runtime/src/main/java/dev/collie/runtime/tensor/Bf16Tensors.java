package dev.collie.runtime.tensor;

import dev.collie.compiler.ir.DType;
import dev.collie.runtime.checkpoint.Bf16;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/** Widening bf16 weights to fp32 for compute, and narrowing updated fp32 values back. */
public final class Bf16Tensors {

    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Bf16Tensors() {}

    /** A new fp32 tensor with the values of a bf16 one (exact). */
    public static Tensor widen(Tensor bf16) {
        Tensor out = Tensor.allocate(bf16.shape, DType.F32);
        for (long i = 0, n = bf16.numel(); i < n; i++) {
            out.data.setAtIndex(Tensor.F32, i, Bf16.bf16ToF32(bf16.data.getAtIndex(BF16, i)));
        }
        return out;
    }

    /** Writes fp32 values into a bf16 tensor, rounding to nearest (for loading and initialising). */
    public static void narrowNearest(Tensor f32, Tensor bf16) {
        for (long i = 0, n = f32.numel(); i < n; i++) {
            bf16.data.setAtIndex(BF16, i, Bf16.f32ToBf16RoundNearestEven(f32.getFloat(i)));
        }
    }

    /** Writes fp32 values into a bf16 tensor with stochastic rounding driven by {@code rng}. */
    public static void narrowStochastic(Tensor f32, Tensor bf16, SplittableRandom rng) {
        long n = f32.numel();
        long i = 0;
        while (i < n) {
            long bits = rng.nextLong();
            for (int k = 0; k < 4 && i < n; k++, i++) {
                bf16.data.setAtIndex(BF16, i, Bf16.f32ToBf16Stochastic(f32.getFloat(i), (int) (bits >>> (16 * k))));
            }
        }
    }
}
