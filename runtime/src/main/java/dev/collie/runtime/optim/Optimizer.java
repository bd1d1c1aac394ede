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

    /** Optimizer state to save with a checkpoint (name to tensor); empty for stateless optimizers. */
    Map<String, Tensor> state();

    /** Restores what {@link #state()} saved; tensors are copied. */
    void loadState(Map<String, float[]> saved, long step);

    /** Steps taken so far. */
    long step();
}
