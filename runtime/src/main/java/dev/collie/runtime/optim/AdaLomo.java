package dev.collie.runtime.optim;

import dev.collie.compiler.ir.DType;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.runtime.exec.ParameterStore;
import dev.collie.runtime.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLomo: an adaptive learning rate for in-place updates (factored second moments as in Adafactor,
 * grouped update normalisation, relative step size, decoupled weight decay), fused into the
 * backward like LOMO. Its state is O(rows + cols) per matrix: a row and a column average of g².
 * The math is in {@link OptimizerKernels#adalomoUpdate}; this class owns the state.
 */
public final class AdaLomo implements Optimizer {

    private final ParameterStore params;
    private final double weightDecay;
    private final OptimizerKernels.AdaLomoConfig config;
    /** Per parameter: [rowState, colState] for matrices, [fullState] for vectors; zero until first used. */
    private final Tensor[][] state;
    private long step;

    public AdaLomo(ParameterStore params, double weightDecay) {
        this.params = params;
        this.weightDecay = weightDecay;
        // The loss is not scaled here (fp32 training), so the kernel must not unscale it.
        OptimizerKernels.AdaLomoConfig d = OptimizerKernels.AdaLomoConfig.defaults();
        this.config = new OptimizerKernels.AdaLomoConfig(d.eps1(), d.eps2(), d.clipThreshold(), d.decayRate(), 1f,
                d.clipGradValue());
        this.state = new Tensor[params.infos().size()][];
    }

    @Override
    public String name() {
        return "adalomo";
    }

    @Override
    public void beginStep() {
        step++;
    }

    /** rows and cols in the kernel's convention: cols 0 for a vector. */
    private static int[] matrixShape(ParamInfo p) {
        if (p.shape().rank() == 2) {
            return new int[] {(int) p.shape().dim(0).coeff(), (int) p.shape().dim(1).coeff()};
        }
        return new int[] {(int) p.numel(), 0};
    }

    private static boolean isVector(int[] rc) {
        return rc[1] == 0 || rc[0] == 1;
    }

    private Tensor[] stateOf(int index) {
        if (state[index] == null) {
            int[] rc = matrixShape(params.infos().get(index));
            state[index] = isVector(rc)
                    ? new Tensor[] {Tensor.zeros(new long[] {(long) rc[0] * Math.max(1, rc[1])}, DType.F32)}
                    : new Tensor[] {Tensor.zeros(new long[] {rc[0]}, DType.F32), Tensor.zeros(new long[] {rc[1]}, DType.F32)};
        }
        return state[index];
    }

    @Override
    public void update(int index, Tensor param, Tensor grad, double lr, double clipScale) {
        int[] rc = matrixShape(params.infos().get(index));
        Tensor[] s = stateOf(index);
        Bf16Updates.apply(param, 1, step, index, p -> {
            if (isVector(rc)) {
                OptimizerKernels.adalomoUpdate(p.data, grad.data, (int) p.numel(), 0, null, null, s[0].data, step,
                        (float) lr, (float) clipScale, (float) weightDecay, config);
            } else {
                OptimizerKernels.adalomoUpdate(p.data, grad.data, rc[0], rc[1], s[0].data, s[1].data, null, step,
                        (float) lr, (float) clipScale, (float) weightDecay, config);
            }
        });
    }

    @Override
    public Map<String, Tensor> state() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < state.length; i++) {
            if (state[i] == null) {
                continue;
            }
            String name = params.infos().get(i).checkpointName();
            List<String> parts = state[i].length == 1 ? List.of(".second_moment") : List.of(".row_moment", ".col_moment");
            for (int k = 0; k < parts.size(); k++) {
                out.put(name + parts.get(k), state[i][k]);
            }
        }
        return out;
    }

    @Override
    public void loadState(Map<String, float[]> saved, long step) {
        this.step = step;
        for (int i = 0; i < state.length; i++) {
            String name = params.infos().get(i).checkpointName();
            Tensor[] s = null;
            if (saved.containsKey(name + ".second_moment")) {
                s = stateOf(i);
                copy(saved.get(name + ".second_moment"), s[0]);
            } else if (saved.containsKey(name + ".row_moment")) {
                s = stateOf(i);
                copy(saved.get(name + ".row_moment"), s[0]);
                copy(saved.get(name + ".col_moment"), s[1]);
            }
        }
    }

    private static void copy(float[] values, Tensor into) {
        if (values == null || values.length != into.numel()) {
            throw new IllegalArgumentException("optimizer state does not match the model");
        }
        java.lang.foreign.MemorySegment.copy(values, 0, into.data, Tensor.F32, 0, values.length);
    }

    @Override
    public long step() {
        return step;
    }
}
