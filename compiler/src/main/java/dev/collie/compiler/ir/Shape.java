package dev.collie.compiler.ir;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** A tensor shape of {@link Dim}s; rank 0 is a scalar. */
public record Shape(List<Dim> dims) {

    public static final Shape SCALAR = new Shape(List.of());

    public Shape {
        dims = List.copyOf(dims);
    }

    public static Shape of(Dim... dims) {
        return new Shape(List.of(dims));
    }

    public static Shape of(long... dims) {
        var list = new ArrayList<Dim>();
        for (long d : dims) {
            list.add(Dim.of(d));
        }
        return new Shape(list);
    }

    public int rank() {
        return dims.size();
    }

    public Dim dim(int i) {
        return dims.get(i < 0 ? dims.size() + i : i);
    }

    public Dim last() {
        return dims.getLast();
    }

    /** All dimensions but the last. */
    public Shape leading() {
        return new Shape(dims.subList(0, dims.size() - 1));
    }

    public Shape withLast(Dim d) {
        var list = new ArrayList<>(dims.subList(0, dims.size() - 1));
        list.add(d);
        return new Shape(list);
    }

    public Shape append(Dim d) {
        var list = new ArrayList<>(dims);
        list.add(d);
        return new Shape(list);
    }

    public Dim numel() {
        Dim n = Dim.of(1);
        for (Dim d : dims) {
            n = n.times(d);
        }
        return n;
    }

    public boolean isConstant() {
        return dims.stream().allMatch(Dim::isConstant);
    }

    public long[] evaluate(Map<String, Long> bindings) {
        long[] out = new long[dims.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = dims.get(i).evaluate(bindings);
        }
        return out;
    }

    public long numel(Map<String, Long> bindings) {
        return numel().evaluate(bindings);
    }

    /** True when {@code suffix} equals the trailing dimensions of this shape (broadcasting rule). */
    public boolean endsWith(Shape suffix) {
        if (suffix.rank() > rank()) {
            return false;
        }
        return dims.subList(rank() - suffix.rank(), rank()).equals(suffix.dims);
    }

    @Override
    public String toString() {
        return dims.toString();
    }
}
