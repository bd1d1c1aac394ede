package dev.collie.runtime.optim;

import dev.collie.runtime.tensor.Tensor;
import java.util.Map;

/**
 * LOMO: in-place SGD fused into the backward. p -= step * g with step = lr * clipScale rounded to
 * float first (as PyTorch does with a Python scalar), then decoupled weight decay.
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
        float stepSize = (float) (lr * clipScale);
        float decay = (float) (1.0 - lr * weightDecay);
        boolean decays = weightDecay != 0;
        for (long i = 0, n = param.numel(); i < n; i++) {
            float p = param.getFloat(i);
            if (decays) {
                p *= decay;
            }
            param.data.setAtIndex(Tensor.F32, i, p - stepSize * grad.getFloat(i));
        }
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
