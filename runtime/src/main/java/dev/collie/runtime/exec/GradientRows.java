package dev.collie.runtime.exec;

import java.lang.foreign.MemorySegment;

/**
 * Where an op that updates a parameter in place ({@code linear_cross_entropy_update},
 * {@code matmul_tn_update}) sends the
 * parameter's gradient: a block of rows at a time, each block complete. The receiver applies the
 * optimizer to those rows at once; the parameter may change as soon as it returns, and the block's
 * memory is reused for the next.
 */
@FunctionalInterface
public interface GradientRows {

    /** @param grad rows {@code [firstRow, firstRow + rows)} of the gradient, row-major floats */
    void accept(long firstRow, int rows, MemorySegment grad);
}
