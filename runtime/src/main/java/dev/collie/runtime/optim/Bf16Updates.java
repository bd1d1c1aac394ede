package dev.collie.runtime.optim;

import dev.collie.compiler.ir.DType;
import dev.collie.runtime.tensor.Bf16Tensors;
import dev.collie.runtime.tensor.Tensor;

/**
 * Updates of bf16-stored weights: widen to fp32, apply the optimizer's fp32 update, and narrow back
 * with stochastic rounding, so an update smaller than half a bf16 step still moves the weight in
 * expectation (round-to-nearest would drop it, and training would stall). The random bits depend
 * only on (seed, step, parameter), so runs are reproducible and resumable.
 */
final class Bf16Updates {

    interface Fp32Update {
        void apply(Tensor param);
    }

    /** Tests switch this off to show what round-to-nearest does to small updates. */
    static volatile boolean stochastic = true;

    private Bf16Updates() {}

    /** The rounding seed of one parameter's update at one step. */
    static long seed(long seed, long step, int index) {
        return seed * 0x9E3779B97F4A7C15L + step * 0xBF58476D1CE4E5B9L + index * 0x94D049BB133111EBL;
    }

    static void apply(Tensor param, long seed, long step, int index, Fp32Update update) {
        if (param.dtype != DType.BF16) {
            update.apply(param);
            return;
        }
        Tensor wide = Bf16Tensors.widen(param);
        try {
            update.apply(wide);
            long mixed = seed(seed, step, index);
            if (stochastic) {
                Bf16Tensors.narrowStochastic(wide, param, mixed);
            } else {
                Bf16Tensors.narrowNearest(wide, param);
            }
        } finally {
            wide.free();
        }
    }
}
