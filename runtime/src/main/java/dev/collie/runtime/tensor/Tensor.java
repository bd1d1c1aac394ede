package dev.collie.runtime.tensor;

import dev.collie.compiler.ir.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/** A contiguous row-major tensor in off-heap memory. Owned tensors are freed by the executor. */
public final class Tensor {

    public static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    public static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;

    public final MemorySegment data;
    public final long[] shape;
    public final DType dtype;
    private final boolean owned;

    private Tensor(MemorySegment data, long[] shape, DType dtype, boolean owned) {
        this.data = data;
        this.shape = shape;
        this.dtype = dtype;
        this.owned = owned;
    }

    /** A new uninitialised tensor. */
    public static Tensor allocate(long[] shape, DType dtype) {
        long n = numel(shape);
        return new Tensor(NativeMemory.allocate(Math.multiplyExact(n, (long) dtype.bytes)), shape.clone(), dtype, true);
    }

    public static Tensor zeros(long[] shape, DType dtype) {
        Tensor t = allocate(shape, dtype);
        t.data.fill((byte) 0);
        return t;
    }

    /** A view of memory someone else owns (a slice of the parameter arena). */
    public static Tensor view(MemorySegment data, long[] shape, DType dtype) {
        return new Tensor(data, shape.clone(), dtype, false);
    }

    public static Tensor scalar(double v) {
        Tensor t = allocate(new long[0], DType.F32);
        t.data.set(F32, 0, (float) v);
        return t;
    }

    public static Tensor ofLongs(long[] values, long... shape) {
        Tensor t = allocate(shape, DType.I64);
        MemorySegment.copy(values, 0, t.data, I64, 0, values.length);
        return t;
    }

    public static Tensor ofFloats(float[] values, long... shape) {
        Tensor t = allocate(shape, DType.F32);
        MemorySegment.copy(values, 0, t.data, F32, 0, values.length);
        return t;
    }

    public static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long numel() {
        return numel(shape);
    }

    public float getFloat(long i) {
        return data.getAtIndex(F32, i);
    }

    public float item() {
        return getFloat(0);
    }

    public float[] toFloatArray() {
        return data.toArray(ValueLayout.JAVA_FLOAT);
    }

    public void free() {
        if (owned) {
            NativeMemory.free(data);
        }
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + dtype.shortName();
    }
}
