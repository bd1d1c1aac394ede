package dev.collie.runtime.optim;

import dev.collie.runtime.tensor.Tensor;
import java.lang.foreign.MemorySegment;
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

    /** Every element moves by its own gradient alone. */
    @Override
    public boolean elementwise() {
        return true;
    }

    @Override
    public void updateBlock(int index, Tensor param, long row0, int rows, long col0, int cols, MemorySegment grad,
                            long offset, long ld, double lr) {
        long width = param.numel() / param.shape[0];
        long bytes = param.dtype.bytes;
        if (col0 == 0 && cols == width && ld == width && (long) rows * cols <= 1 << 16) {
            // Whole rows, few enough for one serial kernel call: one contiguous span. (Blocks arrive
            // from the GEMM's tasks, already in parallel; a longer span would fork again inside them.)
            long first = row0 * width;
            long count = rows * width;
            update(index, Tensor.view(param.data.asSlice(first * bytes, count * bytes), new long[] {count}, param.dtype),
                    Tensor.view(grad.asSlice(offset * Float.BYTES, count * Float.BYTES), new long[] {count},
                            dev.collie.compiler.ir.DType.F32), lr, 1.0, first);
            return;
        }
        for (int r = 0; r < rows; r++) {
            long first = (row0 + r) * width + col0;
            update(index, Tensor.view(param.data.asSlice(first * bytes, cols * bytes), new long[] {cols}, param.dtype),
                    Tensor.view(grad.asSlice((offset + r * ld) * Float.BYTES, (long) cols * Float.BYTES),
                            new long[] {cols}, dev.collie.compiler.ir.DType.F32), lr, 1.0, first);
        }
    }

    @Override
    public void update(int index, Tensor param, Tensor grad, double lr, double clipScale) {
        update(index, param, grad, lr, clipScale, 0);
    }

    /** {@link #update} of the elements from {@code firstElement} on of a parameter, {@code param} being those. */
    private void update(int index, Tensor param, Tensor grad, double lr, double clipScale, long firstElement) {
        if (param.dtype == dev.collie.compiler.ir.DType.BF16 && Bf16Updates.stochastic) {
            // One pass over the bf16 weight, with the seed Bf16Updates would give it; a block of the
            // weight draws the random bits its elements draw in a whole-weight update.
            int seed = dev.collie.runtime.tensor.Bf16Tensors.seedAt(
                    dev.collie.runtime.tensor.Bf16Tensors.seedBits(Bf16Updates.seed(0, step, index)), firstElement);
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
