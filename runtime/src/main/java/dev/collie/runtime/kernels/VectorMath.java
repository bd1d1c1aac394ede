package dev.collie.runtime.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Elementary functions on vectors, built from adds, multiplies, FMAs and shifts only, so they give
 * the same bits interpreted and compiled. The Vector API's {@code lanewise(EXP)} does not: compiled
 * it calls an SVML stub where one exists, interpreted (and on CPUs without a stub) it calls scalar
 * {@code Math.exp}, which rounds differently in the last place, so a run resumed with a cold JIT
 * diverged from the uninterrupted one. Without a stub it is also 4× slower than this.
 */
public final class VectorMath {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final float EXP_LO = -88.0f;
    private static final float EXP_HI = 88.0f;
    private static final float LOG2E = 1.44269504088896341f;
    /** 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits. */
    private static final float ROUND_MAGIC = 12582912f;
    private static final int EXP_BIAS_FIX = 127 - Float.floatToRawIntBits(ROUND_MAGIC);

    private VectorMath() {}

    /**
     * e^x within 2 ulp for -88 < x < 88 (Cephes expf: x = n ln2 + r, |r| ≤ ln2/2, a degree-5
     * polynomial). At or below -88 (including -inf, such as masked attention scores) it gives
     * exactly 0: n = -127 builds a zero scale factor. Above 88 it gives e^88 (about 1.7e38), which
     * keeps 1 / (1 + e^x) a tiny positive number rather than a division by infinity.
     */
    public static FloatVector exp(FloatVector x) {
        x = x.blend(EXP_LO, x.lt(EXP_LO)).min(EXP_HI);
        FloatVector t = x.fma(LOG2E, ROUND_MAGIC);
        FloatVector n = t.sub(ROUND_MAGIC);
        FloatVector r = n.fma(FloatVector.broadcast(S, -0.693359375f), x);
        r = n.fma(FloatVector.broadcast(S, 2.12194440e-4f), r);
        FloatVector p = r.fma(1.9875691500e-4f, 1.3981999507e-3f);
        p = p.fma(r, FloatVector.broadcast(S, 8.3334519073e-3f));
        p = p.fma(r, FloatVector.broadcast(S, 4.1665795894e-2f));
        p = p.fma(r, FloatVector.broadcast(S, 1.6666665459e-1f));
        p = p.fma(r, FloatVector.broadcast(S, 5.0000001201e-1f));
        p = p.fma(r.mul(r), r.add(1f));
        IntVector bits = t.reinterpretAsInts().add(EXP_BIAS_FIX).lanewise(VectorOperators.LSHL, 23);
        return p.mul(bits.reinterpretAsFloats());
    }
}
