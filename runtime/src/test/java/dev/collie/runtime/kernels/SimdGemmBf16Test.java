package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.floats;
import static dev.collie.runtime.kernels.Tensors.segment;
import static dev.collie.runtime.kernels.Tensors.uniform;
import static dev.collie.runtime.kernels.Tensors.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * GEMM with a bfloat16 B (weights stored in bf16) against the float GEMM on B widened: the
 * packing widens exactly, so the results are bit-identical, on both transposes, both paths (packed
 * and unpacked) and sizes off the vector width and the blocking.
 */
class SimdGemmBf16Test {

    @Property(tries = 40)
    void bf16WeightsGiveTheProductOfTheirWidenedValues(@ForAll @IntRange(min = 1, max = 70) int M,
                                                        @ForAll @IntRange(min = 1, max = 90) int N,
                                                        @ForAll @IntRange(min = 1, max = 600) int K,
                                                        @ForAll boolean transposed) {
        Random rnd = new Random(M * 1_000_000L + N * 1000L + K + (transposed ? 7 : 0));
        float[] a = uniform(rnd, M * K, -1, 1);
        float[] wide = uniform(rnd, N * K, -1, 1);
        MemorySegment bf16 = Arena.ofAuto().allocate((long) N * K * 2, 8);
        for (int i = 0; i < wide.length; i++) {
            short bits = (short) (Float.floatToRawIntBits(wide[i]) >>> 16);
            bf16.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, bits);
            wide[i] = Float.intBitsToFloat(bits << 16);
        }
        MemorySegment want = zeros(M * N);
        MemorySegment got = zeros(M * N);
        if (transposed) {
            SimdGemm.matmulNT(segment(a), segment(wide), want, M, N, K, false);
            SimdGemm.matmulNTBf16(segment(a), bf16, got, M, N, K, false);
        } else {
            SimdGemm.matmulNN(segment(a), segment(wide), want, M, N, K, false);
            SimdGemm.matmulNNBf16(segment(a), bf16, got, M, N, K, false);
        }
        assertArrayEquals(floats(want, M * N), floats(got, M * N));
    }

    /** The vector widening of the packing, on every bf16 bit pattern at every start offset mod VL. */
    @Property(tries = 10)
    void vectorWideningEqualsTheScalarDefinitionOnEveryBitPattern(@ForAll @IntRange(min = 0, max = 31) int offset) {
        int n = 1 << 16;
        MemorySegment bf16 = Arena.ofAuto().allocate((n + offset) * 2L, 8);
        for (int i = 0; i < n; i++) {
            bf16.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, offset + i, (short) i);
        }
        float[] want = new float[n + 64];
        float[] got = new float[n + 64];
        for (int i = 0; i + SimdGemm.VL <= n; i += SimdGemm.VL) {
            SimdGemm.widenIntoScalar(bf16, offset + i, want, i + 3);
            SimdGemm.widenInto(bf16, offset + i, got, i + 3);
        }
        for (int i = 0; i < want.length; i++) {
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), "element " + i);
        }
    }
}
