package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;

/**
 * Fuses an embedding table's gradient into its in-place update: {@code embedding_grad(ids, dy)} whose only
 * reader is {@code param_update(E, dE, lr)} becomes {@code embedding_grad_update(ids, dy, E, lr)}. Its kernel
 * sums the tokens' gradient rows a block of table rows at a time and hands each block to the optimizer
 * while it is in cache. No [V, C] gradient exists: the [V, C] zero fill, the scatter into it and the read
 * back are gone, and so is the table-sized gradient from the planned peak. For 7B that gradient (32000 x
 * 4096 floats, 500 MiB) was the whole arena of the training step at batch 1 x 128, so its peak.
 *
 * <p>Why it is sound: an elementwise optimizer updates each element from its own gradient alone, so
 * updating by blocks equals updating at once; every table row is handed over (rows no token chose get
 * zeros, as in the whole gradient, so weight decay still applies to them), and each row's gradient is the
 * sum of its tokens' rows in token order, the same additions as {@code embedding_grad}. The fused node goes
 * right after the later of the gradient and the table's last other reader (a tied output head reads it
 * too), the earliest point where the table may change; ScheduleInPlaceUpdates keeps it there.
 *
 * Changes: replaces each such gradient and update pair by one node, in training programs whose optimizer
 * updates elementwise ({@link CompileOptions#elementwiseUpdates()}). Assumes: runs after DifferentiateGraph
 * and InsertNormClipping (a clipped update, whose gradient also feeds the norm, does not match: the gradient
 * has two readers), and before ScheduleInPlaceUpdates.
 */
public final class FuseEmbeddingUpdate extends OptionsPass {

    @Override
    public String name() {
        return "FuseEmbeddingUpdate";
    }

    @Override
    public boolean appliesTo(ProgramKind kind, CompileOptions options) {
        return kind.trains() && options.elementwiseUpdates();
    }

    @Override
    public void run(Graph g, ProgramKind kind, CompileOptions options) {
        Fusions.fuseGradientIntoUpdate(g, "embedding_grad", "embedding_grad_update");
    }
}
