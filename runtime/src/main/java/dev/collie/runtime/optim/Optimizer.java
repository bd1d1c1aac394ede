package dev.collie.runtime.optim;

import dev.collie.runtime.tensor.Tensor;
import java.util.Map;

/**
 * The update fused into the backward pass. The compiled program says when a parameter's gradient is
 * complete ({@code param_update}); the optimizer says what the update is. It must finish with the
 * gradient before returning: the executor frees it right after.
 */
public interface Optimizer {

    String name();

    /** Called once before each training step's program runs (advances step counters). */
    void beginStep();

    /**
     * Updates parameter {@code index} in place. A {@code clipScale} of 0 means the step's gradient
     * norm was not finite: the executor does not call the optimizer then, so weights stay intact.
     *
     * @param lr        this step's learning rate (after the schedule)
     * @param clipScale the global-norm clipping coefficient, 1 without clipping
     */
    void update(int index, Tensor param, Tensor grad, double lr, double clipScale);

    /**
     * Whether {@link #update} treats every element on its own, from its own gradient element (LOMO):
     * then a parameter may be updated a block at a time ({@link #updateBlock}), and the compiler
     * may fuse an update into the op that computes the gradient, so the whole gradient never exists.
     */
    default boolean elementwise() {
        return false;
    }

    /**
     * Updates rows {@code [row0, row0 + rows)} x columns {@code [col0, col0 + cols)} of parameter
     * {@code index} (a matrix) from their gradient (element (i, j) at float {@code offset + (i - row0) * ld
     * + (j - col0)} of {@code grad}), without clipping; only for {@link #elementwise()} optimizers. Gives
     * the bits that {@link #update} over the whole parameter gives those elements. Disjoint blocks may be
     * updated from several threads at once.
     */
    default void updateBlock(int index, Tensor param, long row0, int rows, long col0, int cols,
                             java.lang.foreign.MemorySegment grad, long offset, long ld, double lr) {
        throw new UnsupportedOperationException(name() + " updates whole parameters only");
    }

    /** Optimizer state to save with a checkpoint (name to tensor); empty for stateless optimizers. */
    Map<String, Tensor> state();

    /** Restores what {@link #state()} saved; tensors are copied. */
    void loadState(Map<String, float[]> saved, long step);

    /** Steps taken so far. */
    long step();
}
