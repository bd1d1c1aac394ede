package dev.collie.runtime.checkpoint;

import java.util.Arrays;
import java.util.Objects;

/**
 * Location and layout of one tensor in a safetensors file. {@code begin} and {@code end} are
 * byte offsets relative to the start of the data section (just after the header), as in the
 * header's {@code data_offsets}.
 */
public record TensorInfo(String name, StDType dtype, long[] shape, long begin, long end) {

    public TensorInfo {
        // Records expose their components; copy so no caller can mutate a shared shape.
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Number of elements; 1 for a scalar (empty shape). Callers rely on header validation against overflow. */
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** Size of the tensor's data in bytes. */
    public long byteSize() {
        return end - begin;
    }

    // Array components need value semantics for equality to be meaningful.
    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t
                && name.equals(t.name)
                && dtype == t.dtype
                && Arrays.equals(shape, t.shape)
                && begin == t.begin
                && end == t.end;
    }

    @Override
    public int hashCode() {
        return 31 * Objects.hash(name, dtype, begin, end) + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return "TensorInfo[" + name + ", " + dtype + ", " + Arrays.toString(shape) + ", " + begin + ".." + end + "]";
    }
}
