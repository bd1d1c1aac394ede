package dev.collie.compiler.passes;

import java.util.HashSet;
import java.util.Set;

/**
 * Choices that change the compiled programs but not what they compute.
 *
 * @param disabledPasses       Fuse passes to leave out, so the unfused reference ops run
 * @param recompute      activation checkpointing (RecomputeActivations): OFF keeps every activation; FULL keeps
 *                       each block's input and recomputes the rest of the block just before its backward;
 *                       SELECTIVE also keeps the outputs of the matrix products and attention and recomputes
 *                       only the cheap ops (norms, activations, rotations, layout)
 * @param elementwiseUpdates the optimizer updates every weight element from its own gradient element alone
 *                       (LOMO, the default), so a parameter may be updated a block of rows at a time and its
 *                       whole gradient need never exist (FuseHeadUpdate, FuseWeightUpdate, FuseEmbeddingUpdate);
 *                       false for optimizers that need statistics of the whole gradient first (AdaLomo)
 */
public record CompileOptions(Set<String> disabledPasses, Recompute recompute, boolean elementwiseUpdates) {

    public CompileOptions(Set<String> disabledPasses, Recompute recompute) {
        this(disabledPasses, recompute, true);
    }

    /** What activation checkpointing recomputes. */
    public enum Recompute {
        OFF, FULL, SELECTIVE;

        /** "off", "full" or "selective" (the train key and the flag), with a clear error otherwise. */
        public static Recompute parse(String s) {
            for (Recompute r : values()) {
                if (r.name().equalsIgnoreCase(s)) {
                    return r;
                }
            }
            throw new IllegalArgumentException("activation checkpointing must be off, full or selective, got '" + s + "'");
        }
    }

    public boolean recomputeActivations() {
        return recompute != Recompute.OFF;
    }

    /**
     * The defaults: every pass, no recomputation. The system property {@code collie.disablePasses}
     * (comma separated) names Fuse passes to leave out, e.g.
     * {@code -Dcollie.disablePasses=FuseSwiGlu,FuseRotaryHeads}.
     */
    public static final CompileOptions DEFAULT = new CompileOptions(disabledFromProperty(), Recompute.OFF);

    public CompileOptions {
        disabledPasses = Set.copyOf(disabledPasses);
    }

    public CompileOptions withRecompute(boolean on) {
        return withRecompute(on ? Recompute.FULL : Recompute.OFF);
    }

    public CompileOptions withRecompute(Recompute mode) {
        return new CompileOptions(disabledPasses, mode, elementwiseUpdates);
    }

    public CompileOptions withDisabled(Set<String> passes) {
        return new CompileOptions(passes, recompute, elementwiseUpdates);
    }

    public CompileOptions withElementwiseUpdates(boolean elementwise) {
        return new CompileOptions(disabledPasses, recompute, elementwise);
    }

    private static Set<String> disabledFromProperty() {
        Set<String> out = new HashSet<>();
        for (String name : System.getProperty("collie.disablePasses", "").split(",")) {
            if (!name.isBlank()) {
                out.add(name.trim());
            }
        }
        return out;
    }
}
