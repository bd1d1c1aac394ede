package dev.collie.compiler.passes;

import java.util.HashSet;
import java.util.Set;

/**
 * Choices that change the compiled programs but not what they compute.
 *
 * @param disabledPasses       Fuse passes to leave out, so the unfused reference ops run
 * @param recomputeActivations activation checkpointing: keep each block's input and recompute the rest of
 *                             its forward just before its backward (RecomputeActivations)
 */
public record CompileOptions(Set<String> disabledPasses, boolean recomputeActivations) {

    /**
     * The defaults: every pass, no recomputation. The system property {@code collie.disablePasses}
     * (comma separated) names Fuse passes to leave out, e.g.
     * {@code -Dcollie.disablePasses=FuseSwiGlu,FuseRotaryHeads}.
     */
    public static final CompileOptions DEFAULT = new CompileOptions(disabledFromProperty(), false);

    public CompileOptions {
        disabledPasses = Set.copyOf(disabledPasses);
    }

    public CompileOptions withRecompute(boolean on) {
        return new CompileOptions(disabledPasses, on);
    }

    public CompileOptions withDisabled(Set<String> passes) {
        return new CompileOptions(passes, recomputeActivations);
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
