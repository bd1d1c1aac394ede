package dev.collie.runtime.exec;

import java.lang.foreign.MemorySegment;

/**
 * Where an op that updates a parameter in place ({@code linear_cross_entropy_update},
 * {@code matmul_tn_update}, {@code embedding_grad_update}) sends the parameter's gradient: a block at a
 * time, each block complete. The receiver applies the optimizer to those elements at once; the parameter
 * may change as soon as it returns, and the block's memory is reused for the next. Blocks are disjoint and
 * may arrive on several threads at once.
 */
@FunctionalInterface
public interface GradientBlocks {

    /**
     * @param grad element (i, j) of rows {@code [row0, row0 + rows)} and columns {@code [col0, col0 + cols)}
     *             of the gradient is float {@code offset + (i - row0) * ld + (j - col0)} of {@code grad}
     */
    void accept(long row0, int rows, long col0, int cols, MemorySegment grad, long offset, long ld);
}
