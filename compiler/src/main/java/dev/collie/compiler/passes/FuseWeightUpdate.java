package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;

/**
 * Fuses each weight's gradient product into its in-place update: {@code matmul_tn(dy, x)} whose only
 * reader is {@code param_update(W, dW, lr)} becomes {@code matmul_tn_update(dy, x, W, lr)}. Its kernel
 * hands W's gradient to the optimizer block by block while each block is in cache: straight from the
 * GEMM's tasks when the tokens fit one GEMM slice (then the updates run on every thread), else a band
 * of rows at a time from its workspace ({@code dW[band] = dy[:, band]^T x}). No [N, K] gradient exists:
 * the step neither writes nor reads one back from memory, and the planned peak loses the largest weight
 * gradient (46 MB at 1b, 180 MB at 7B).
 *
 * <p>Why it is sound: an elementwise optimizer updates each element from its own gradient alone, so
 * updating by blocks equals updating at once, and each block's elements are the same FMA chains as the
 * whole product's (SimdGemm's result depends on the shared dimension's split alone). The fused node
 * goes right after the later of the product and W's last other reader, the earliest point where W may
 * change; ScheduleInPlaceUpdates keeps it there as it does the update.
 *
 * Changes: replaces each such product and update pair by one node, in training programs whose optimizer
 * updates elementwise ({@link CompileOptions#elementwiseUpdates()}). Assumes: runs after
 * DifferentiateGraph and InsertNormClipping (a clipped update, whose dW also feeds the norm, does not
 * match: dW has two readers), and before ScheduleInPlaceUpdates.
 */
public final class FuseWeightUpdate extends OptionsPass {

    @Override
    public String name() {
        return "FuseWeightUpdate";
    }

    @Override
    public boolean appliesTo(ProgramKind kind, CompileOptions options) {
        return kind.trains() && options.elementwiseUpdates();
    }

    @Override
    public void run(Graph g, ProgramKind kind, CompileOptions options) {
        // Right after the product or W's last other reader (the input gradient's product), whichever
        // comes later: inside the layer's backward, where its activations are (recomputed ones too).
        Fusions.fuseGradientIntoUpdate(g, "matmul_tn", "matmul_tn_update");
    }
}
