package dev.collie.runtime.optim;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Little helpers to move float arrays in and out of little-endian float32 segments. */
final class Segs {
    static final ValueLayout.OfFloat F32 =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Segs() {}

    /** Exactly-sized segment, so any out-of-range access by a kernel throws. */
    static MemorySegment of(Arena arena, float[] values) {
        MemorySegment s = arena.allocate((long) values.length * Float.BYTES, 1);
        for (int i = 0; i < values.length; i++) {
            s.setAtIndex(F32, i, values[i]);
        }
        return s;
    }

    static MemorySegment zeros(Arena arena, long count) {
        return arena.allocate(count * Float.BYTES, 1);
    }

    static float[] read(MemorySegment s) {
        float[] v = new float[(int) (s.byteSize() / Float.BYTES)];
        for (int i = 0; i < v.length; i++) {
            v[i] = s.getAtIndex(F32, i);
        }
        return v;
    }
}
