package dev.collie.compiler.ir;

import java.util.List;

/**
 * A trainable tensor of the model: its unique IR name (decoder.3.wq), checkpoint name
 * (model.layers.3.self_attn.q_proj.weight), logical shape, initialiser, whether the checkpoint stores
 * it transposed, and where the `.collie` file declares it (for error messages about checkpoints).
 */
public record ParamInfo(String name, String checkpointName, Shape shape, Init init, boolean storedTransposed,
                        String declaredAt) {

    /** kind: normal(std, mean), uniform(lo, hi), zeros, ones, constant(v). */
    public record Init(String kind, List<Double> args) {}

    /** The shape as the checkpoint stores it. */
    public Shape storedShape() {
        return storedTransposed ? Shape.of(shape.dim(1), shape.dim(0)) : shape;
    }

    public long numel() {
        return shape.numel().coeff();
    }
}
