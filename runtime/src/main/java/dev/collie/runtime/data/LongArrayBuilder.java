package dev.collie.runtime.data;

import java.util.Arrays;

/** A growable {@code long[]}, to assemble rows from separately encoded pieces without boxing. */
final class LongArrayBuilder {

    private long[] data = new long[64];
    private int size;

    void add(long v) {
        if (size == data.length) {
            data = Arrays.copyOf(data, data.length * 2);
        }
        data[size++] = v;
    }

    void addAll(long[] vs) {
        if (size + vs.length > data.length) {
            data = Arrays.copyOf(data, Math.max(data.length * 2, size + vs.length));
        }
        System.arraycopy(vs, 0, data, size, vs.length);
        size += vs.length;
    }

    /** Appends {@code v} {@code count} times. */
    void fill(long v, int count) {
        for (int i = 0; i < count; i++) {
            add(v);
        }
    }

    int size() {
        return size;
    }

    long[] toArray() {
        return Arrays.copyOf(data, size);
    }
}
