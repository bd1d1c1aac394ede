package dev.collie.runtime.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.compiler.ir.DType;
import dev.collie.runtime.checkpoint.Bf16;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/** The vectorised widening and stochastic narrowing against their scalar definitions. */
class Bf16TensorsTest {

    static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    @Property(tries = 30)
    void narrowingAndWideningMatchTheScalarDefinitions(@ForAll @IntRange(min = 1, max = 200_000) int n,
                                                       @ForAll long seed) {
        Random rnd = new Random(n ^ seed);
        Tensor f32 = Tensor.allocate(new long[] {n}, DType.F32);
        Tensor bf16 = Tensor.allocate(new long[] {n}, DType.BF16);
        try {
            for (int i = 0; i < n; i++) {
                float v = switch (rnd.nextInt(50)) {
                    case 0 -> Float.NaN;
                    case 1 -> Float.POSITIVE_INFINITY;
                    case 2 -> -Float.MAX_VALUE;
                    default -> (float) rnd.nextGaussian() * 3;
                };
                f32.data.setAtIndex(Tensor.F32, i, v);
            }
            Bf16Tensors.narrowStochastic(f32, bf16, seed);
            int s = (int) (seed ^ (seed >>> 32));
            for (int i = 0; i < n; i++) {
                short want = Bf16.f32ToBf16Stochastic(f32.getFloat(i), Bf16Tensors.randomBits(s, i));
                assertEquals(want, bf16.data.getAtIndex(BF16, i), "element " + i + " of " + n);
            }
            Tensor wide = Bf16Tensors.widen(bf16);
            try {
                for (int i = 0; i < n; i++) {
                    float want = Bf16.bf16ToF32(bf16.data.getAtIndex(BF16, i));
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(wide.getFloat(i)));
                }
            } finally {
                wide.free();
            }
        } finally {
            f32.free();
            bf16.free();
        }
    }

    @Property(tries = 5)
    void stochasticRoundingIsUnbiased(@ForAll long seed) {
        // 1 + 2^-10 lies between two bf16 values (1 and 1 + 2^-7): it must round up 1/8 of the time.
        int n = 1 << 16;
        Tensor f32 = Tensor.allocate(new long[] {n}, DType.F32);
        Tensor bf16 = Tensor.allocate(new long[] {n}, DType.BF16);
        try {
            for (int i = 0; i < n; i++) {
                f32.data.setAtIndex(Tensor.F32, i, 1f + 0x1p-10f);
            }
            Bf16Tensors.narrowStochastic(f32, bf16, seed);
            double mean = 0;
            for (int i = 0; i < n; i++) {
                mean += Bf16.bf16ToF32(bf16.data.getAtIndex(BF16, i));
            }
            mean /= n;
            // one standard deviation of the mean is 1e-5; rounding to nearest would be off by 9.8e-4
            assertTrue(Math.abs(mean - (1 + 0x1p-10)) < 6e-5, "mean " + mean);
        } finally {
            f32.free();
            bf16.free();
        }
    }

    @Property(tries = 20)
    void theFusedBf16LomoUpdateEqualsWidenUpdateNarrow(@ForAll @IntRange(min = 1, max = 150_000) int n,
                                                        @ForAll boolean decay) {
        Random rnd = new Random(n);
        Tensor p = Tensor.allocate(new long[] {n}, DType.BF16);
        Tensor g = Tensor.allocate(new long[] {n}, DType.F32);
        try {
            for (int i = 0; i < n; i++) {
                p.data.setAtIndex(BF16, i, Bf16.f32ToBf16RoundNearestEven((float) rnd.nextGaussian()));
                g.data.setAtIndex(Tensor.F32, i, (float) rnd.nextGaussian());
            }
            Tensor wide = Bf16Tensors.widen(p);
            Tensor want = Tensor.allocate(new long[] {n}, DType.BF16);
            try {
                float wd = decay ? 0.1f : 0f;
                dev.collie.runtime.optim.OptimizerKernels.lomoUpdate(wide.data, g.data, n, 1e-3f, 0.5f, wd);
                Bf16Tensors.narrowStochastic(wide, want, 12345L);
                dev.collie.runtime.optim.OptimizerKernels.lomoUpdateBf16(p.data, g.data, n, 1e-3f, 0.5f, wd,
                        Bf16Tensors.seedBits(12345L));
                for (int i = 0; i < n; i++) {
                    assertEquals(want.data.getAtIndex(BF16, i), p.data.getAtIndex(BF16, i), "element " + i);
                }
            } finally {
                wide.free();
                want.free();
            }
        } finally {
            p.free();
            g.free();
        }
    }
}
