package dev.collie.runtime.checkpoint;

/** bfloat16 conversions. A bf16 value is the upper 16 bits of the float32 with the same sign and exponent. */
public final class Bf16 {

    private Bf16() {}

    /**
     * Rounds a float32 to the nearest bf16, ties to even (what PyTorch does), so that values
     * written by Collie match what a reference implementation would produce bit for bit.
     */
    public static short f32ToBf16RoundNearestEven(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            // Rounding could carry a NaN payload into the exponent and turn it into infinity;
            // truncate and force the quiet bit so it stays NaN (sign preserved).
            return (short) ((bits >>> 16) | 0x0040);
        }
        int lsb = (bits >>> 16) & 1;
        return (short) ((bits + 0x7FFF + lsb) >>> 16);
    }

    /**
     * Rounds a float32 to bf16 up or down at random, with the probability of rounding up equal to
     * the distance from the lower neighbour: unbiased, so small updates survive on average where
     * round-to-nearest would discard every one of them. {@code random16} supplies 16 random bits.
     */
    public static short f32ToBf16Stochastic(float f, int random16) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f) || Float.isInfinite(f)) {
            return f32ToBf16RoundNearestEven(f);
        }
        int rounded = (bits + (random16 & 0xFFFF)) >>> 16;
        // Never round a finite value up into infinity.
        if ((rounded & 0x7F80) == 0x7F80) {
            return (short) (bits >>> 16);
        }
        return (short) rounded;
    }

    /** Exact: every bf16 value is representable as float32. */
    public static float bf16ToF32(short h) {
        return Float.intBitsToFloat((h & 0xFFFF) << 16);
    }
}
