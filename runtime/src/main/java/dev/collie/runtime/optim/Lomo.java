package dev.collie.runtime.optim;

import dev.collie.runtime.tensor.Tensor;
import java.util.Map;

/**
 * LOMO: in-place SGD fused into the backward (the math is in {@link OptimizerKernels#lomoUpdate}).
 */
public final class Lomo implements Optimizer {

    private final double weightDecay;
    private long step;

    public Lomo(double weightDecay) {
        this.weightDecay = weightDecay;
    }

    @Override
    public String name() {
        return "lomo";
    }

    @Override
    public void beginStep() {
        step++;
    }

    @Override
    public void update(int index, Tensor param, Tensor grad, double lr, double clipScale) {
        if (param.dtype == dev.collie.compiler.ir.DType.BF16 && Bf16Updates.stochastic) {
            // One pass over the bf16 weight, with the seed Bf16Updates would give it.
            int seed = dev.collie.runtime.tensor.Bf16Tensors.seedBits(Bf16Updates.seed(0, step, index));
            if (weightDecay == 0) {
                OptimizerKernels.lomoUpdateBf16(param.data, grad.data, param.numel(), (float) (lr * clipScale), 1f, 0f,
                        seed);
            } else {
                OptimizerKernels.lomoUpdateBf16(param.data, grad.data, param.numel(), (float) lr, (float) clipScale,
                        (float) weightDecay, seed);
            }
            return;
        }
        Bf16Updates.apply(param, 0, step, index, p -> {
            if (weightDecay == 0) {
                // One rounding of lr * clipScale, as PyTorch does with a Python scalar step.
                OptimizerKernels.lomoUpdate(p.data, grad.data, p.numel(), (float) (lr * clipScale), 1f, 0f);
            } else {
                OptimizerKernels.lomoUpdate(p.data, grad.data, p.numel(), (float) lr, (float) clipScale,
                        (float) weightDecay);
            }
        });
    }

    @Override
    public Map<String, Tensor> state() {
        return Map.of();
    }

    @Override
    public void loadState(Map<String, float[]> saved, long step) {
        this.step = step;
    }

    @Override
    public long step() {
        return step;
    }
}
