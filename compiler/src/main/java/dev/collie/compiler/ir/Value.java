package dev.collie.compiler.ir;

/** An SSA value: output {@code index} of node {@code producer}. Printed as %id. */
public final class Value {

    public final int id;
    public final Shape shape;
    public final DType dtype;
    Node producer;
    int index;

    Value(int id, Shape shape, DType dtype) {
        this.id = id;
        this.shape = shape;
        this.dtype = dtype;
    }

    public Node producer() {
        return producer;
    }

    public int index() {
        return index;
    }

    public String ref() {
        return "%" + id;
    }

    public String typeString() {
        return shape + dtype.shortName();
    }

    @Override
    public String toString() {
        return ref();
    }
}
