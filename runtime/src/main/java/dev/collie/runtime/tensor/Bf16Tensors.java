package dev.collie.runtime.tensor;

import dev.collie.compiler.ir.DType;
import dev.collie.runtime.checkpoint.Bf16;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.stream.LongStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Widening bf16 weights to fp32 for compute, and narrowing updated fp32 values back (a bf16 value
 * is the top half of a float). Large tensors are split in fixed chunks that run in parallel; no
 * result depends on the split.
 */
public final class Bf16Tensors {

    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** Elements per parallel task (a multiple of every vector length). */
    private static final long CHUNK = 1 << 16;
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    /** As many bf16 (short) lanes as {@link #FLOATS} has, in half the bits. */
    private static final VectorSpecies<Short> BF16_LANES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 2));
    /** Tensor data is in native byte order (the layouts of {@link Tensor#F32} and {@link #BF16}). */
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    private Bf16Tensors() {}

    /** A new fp32 tensor with the values of a bf16 one (exact). */
    public static Tensor widen(Tensor bf16) {
        Tensor out = Tensor.allocate(bf16.shape, DType.F32);
        long n = bf16.numel();
        chunks(n, (from, to) -> {
            // Scalar: the JIT vectorises this long loop itself (SimdGemm.widenInto, a loop of one
            // vector length, it did not, hence the explicit lanes there).
            for (long i = from; i < to; i++) {
                out.data.setAtIndex(Tensor.F32, i, Bf16.bf16ToF32(bf16.data.getAtIndex(BF16, i)));
            }
        });
        return out;
    }

    /**
     * Writes fp32 values into a bf16 tensor with stochastic rounding: element i adds the low 16 bits
     * of {@link #randomBits}(seed, i) below the kept half, so it rounds up with probability equal to
     * the dropped fraction. The bits depend only on (seed, i), not on the vector width or threads.
     */
    public static void narrowStochastic(Tensor f32, Tensor bf16, long seed) {
        int s = seedBits(seed);
        chunks(f32.numel(), (from, to) -> {
            long i = from;
            // Vector lanes (toBf16Stochastic: the same bits as the scalar rounding); the scalar
            // definition, narrowStochasticScalar, finishes the chunk.
            for (long vend = from + (to - from) / FLOATS.length() * FLOATS.length(); i < vend; i += FLOATS.length()) {
                FloatVector v = FloatVector.fromMemorySegment(FLOATS, f32.data, i * Float.BYTES, NATIVE);
                toBf16Stochastic(v, randomBits(s, i, INTS)).convertShape(VectorOperators.I2S, BF16_LANES, 0)
                        .intoMemorySegment(bf16.data, i * 2, NATIVE);
            }
            narrowStochasticScalar(f32, bf16, s, i, to);
        });
    }

    /** The scalar definition of {@link #narrowStochastic} on elements [from, to). */
    static void narrowStochasticScalar(Tensor f32, Tensor bf16, int seedBits, long from, long to) {
        for (long i = from; i < to; i++) {
            bf16.data.setAtIndex(BF16, i, Bf16.f32ToBf16Stochastic(f32.getFloat(i), randomBits(seedBits, i)));
        }
    }

    /** The 32 bits of a 64-bit seed that {@link #randomBits} takes. */
    public static int seedBits(long seed) {
        return (int) (seed ^ (seed >>> 32));
    }

    /**
     * The seed under which element {@code i} of a block starting at element {@code offset} draws the bits
     * that element {@code offset + i} draws under {@code seed}: {@code randomBits(seedAt(seed, offset), i)
     * == randomBits(seed, offset + i)}, since the hash mixes {@code (int) index * 0x9E3779B9 + seed}.
     */
    public static int seedAt(int seed, long offset) {
        return seed + (int) offset * 0x9E3779B9;
    }

    /** The random bits of element {@code index} under {@code seed} (a 32-bit integer hash). */
    public static int randomBits(int seed, long index) {
        int h = (int) index * 0x9E3779B9 + seed;
        h ^= h >>> 16;
        h *= 0x85EBCA6B;
        h ^= h >>> 13;
        h *= 0xC2B2AE35;
        return h ^ (h >>> 16);
    }

    /**
     * {@link #randomBits} of the elements {@code first, first + 1, ...}, one per lane: the same
     * wrapping int arithmetic, so lane k equals {@code randomBits(seed, first + k)}.
     */
    public static IntVector randomBits(int seed, long first, VectorSpecies<Integer> lanes) {
        IntVector h = IntVector.zero(lanes).addIndex(1).add((int) first).mul(0x9E3779B9).add(seed);
        h = h.lanewise(VectorOperators.XOR, h.lanewise(VectorOperators.LSHR, 16));
        h = h.mul(0x85EBCA6B);
        h = h.lanewise(VectorOperators.XOR, h.lanewise(VectorOperators.LSHR, 13));
        h = h.mul(0xC2B2AE35);
        return h.lanewise(VectorOperators.XOR, h.lanewise(VectorOperators.LSHR, 16));
    }

    /**
     * {@link Bf16#f32ToBf16Stochastic} in lanes: the bf16 bits of each float in the low 16 bits of
     * its int lane (the high 16 are garbage the narrowing store drops). The scalar branches become
     * blends: a finite value adds the low 16 random bits below the kept half, unless that carries it
     * into the infinity exponent (then it is truncated, as is an infinity, whose low half is zero);
     * a NaN is truncated with its quiet bit set, what round-to-nearest-even does to it.
     */
    public static IntVector toBf16Stochastic(FloatVector f, IntVector random) {
        IntVector bits = f.reinterpretAsInts();
        IntVector truncated = bits.lanewise(VectorOperators.LSHR, 16);
        IntVector rounded = bits.add(random.and(0xFFFF)).lanewise(VectorOperators.LSHR, 16);
        IntVector finite = rounded.blend(truncated, rounded.and(0x7F80).eq(0x7F80));
        return finite.blend(truncated.or(0x0040), bits.and(0x7FFFFFFF).compare(VectorOperators.GT, 0x7F800000));
    }

    private interface Range {
        void run(long from, long to);
    }

    private static void chunks(long n, Range body) {
        long count = (n + CHUNK - 1) / CHUNK;
        LongStream r = LongStream.range(0, count);
        (count > 1 ? r.parallel() : r).forEach(c -> body.run(c * CHUNK, Math.min(n, (c + 1) * CHUNK)));
    }

    /** Writes fp32 values into a bf16 tensor, rounding to nearest (for loading and initialising). */
    public static void narrowNearest(Tensor f32, Tensor bf16) {
        narrowNearest(f32.data, bf16.data, 0, f32.numel());
    }

    /** Rounds floats {@code [0, n)} of {@code f32} to nearest-even into bf16 elements {@code [at, at + n)} of {@code bf16}. */
    public static void narrowNearest(MemorySegment f32, MemorySegment bf16, long at, long n) {
        for (long i = 0; i < n; i++) {
            bf16.setAtIndex(BF16, at + i, Bf16.f32ToBf16RoundNearestEven(f32.getAtIndex(Tensor.F32, i)));
        }
    }
}
