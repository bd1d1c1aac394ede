package dev.collie.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class Bf16Test {

    private static short round(int f32Bits) {
        return Bf16.f32ToBf16RoundNearestEven(Float.intBitsToFloat(f32Bits));
    }

    @Test
    void exactValuesPassThrough() {
        assertEquals((short) 0x3F80, Bf16.f32ToBf16RoundNearestEven(1.0f));
        assertEquals((short) 0xC000, Bf16.f32ToBf16RoundNearestEven(-2.0f));
        assertEquals((short) 0x0000, Bf16.f32ToBf16RoundNearestEven(0.0f));
        assertEquals((short) 0x8000, Bf16.f32ToBf16RoundNearestEven(-0.0f));
        assertEquals((short) 0x7F80, Bf16.f32ToBf16RoundNearestEven(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xFF80, Bf16.f32ToBf16RoundNearestEven(Float.NEGATIVE_INFINITY));
    }

    @Test
    void tiesRoundToEven() {
        // Exactly halfway: keep an even mantissa, round an odd one up to the next even.
        assertEquals((short) 0x3F80, round(0x3F808000));
        assertEquals((short) 0x3F82, round(0x3F818000));
        assertEquals((short) 0xBF80, round(0xBF808000));
        assertEquals((short) 0xBF82, round(0xBF818000));
    }

    @Test
    void nonTiesRoundToNearest() {
        assertEquals((short) 0x3F81, round(0x3F808001));
        assertEquals((short) 0x3F80, round(0x3F807FFF));
        assertEquals((short) 0x3F81, round(0x3F80FFFF));
    }

    @Test
    void carryPropagatesIntoExponentAndOverflowsToInfinity() {
        assertEquals((short) 0x4000, round(0x3FFFFFFF));
        assertEquals((short) 0x7F80, Bf16.f32ToBf16RoundNearestEven(Float.MAX_VALUE));
        assertEquals((short) 0xFF80, Bf16.f32ToBf16RoundNearestEven(-Float.MAX_VALUE));
    }

    @Test
    void nanStaysNan() {
        // Payload only in the low half: plain truncation would yield infinity.
        for (int bits : new int[] {0x7F800001, 0xFF800001, 0x7FC00000, 0x7FFFFFFF, 0xFFFFFFFF, 0x7F80FFFF}) {
            short h = round(bits);
            assertTrue(Float.isNaN(Bf16.bf16ToF32(h)), () -> Integer.toHexString(bits));
            assertEquals(bits >>> 31, (h >>> 15) & 1, "sign of " + Integer.toHexString(bits));
        }
    }

    @Test
    void everyBf16WidensExactlyAndRoundTrips() {
        for (int h = 0; h <= 0xFFFF; h++) {
            float f = Bf16.bf16ToF32((short) h);
            assertEquals(h << 16, Float.floatToRawIntBits(f));
            if (!Float.isNaN(f)) {
                assertEquals((short) h, Bf16.f32ToBf16RoundNearestEven(f));
            }
        }
    }
}
