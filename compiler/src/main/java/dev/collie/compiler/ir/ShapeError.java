package dev.collie.compiler.ir;

/** An op applied to values of the wrong shapes or types; the graph builder adds the source position. */
public final class ShapeError extends RuntimeException {
    public ShapeError(String message) {
        super(message, null, false, false);
    }
}
