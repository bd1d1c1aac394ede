package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.GraphVerifier;
import java.util.List;
import java.util.function.BiConsumer;

/** The one ordered list of passes. Each program runs the passes that apply to its kind, in this order. */
public final class PassPipeline {

    public static final List<Pass> PASSES = List.of(
            new FuseHeadCrossEntropy(),
            new FuseRotaryHeads(),
            new FuseSwiGlu(),
            new DifferentiateGraph(),
            new InsertNormClipping(),
            new InsertKvCache(),
            new ScheduleInPlaceUpdates(),
            new EliminateDeadCode());

    private PassPipeline() {}

    /**
     * Compiles one program from a copy of the forward graph.
     *
     * @param afterEach called with (pass name, graph) after each pass that ran, e.g. to dump the IR
     * @param verify    run the verifier after every pass (always on in tests)
     */
    public static Graph run(Graph forward, ProgramKind kind, BiConsumer<String, Graph> afterEach, boolean verify) {
        return run(forward, kind, afterEach, verify, DISABLED);
    }

    /**
     * Passes left out when the system property {@code collie.disablePasses} names them (comma
     * separated), e.g. {@code -Dcollie.disablePasses=FuseSwiGlu,FuseRotaryHeads} to run the unfused
     * reference ops. Only the Fuse passes may be left out; the rest are needed for correctness.
     */
    public static final java.util.Set<String> DISABLED = disabledFromProperty();

    private static java.util.Set<String> disabledFromProperty() {
        String p = System.getProperty("collie.disablePasses", "");
        java.util.Set<String> out = new java.util.HashSet<>();
        for (String name : p.split(",")) {
            if (!name.isBlank()) {
                out.add(name.trim());
            }
        }
        return java.util.Set.copyOf(out);
    }

    /** {@link #run(Graph, ProgramKind, BiConsumer, boolean)} without the Fuse passes named in {@code disabled}. */
    public static Graph run(Graph forward, ProgramKind kind, BiConsumer<String, Graph> afterEach, boolean verify,
                            java.util.Set<String> disabled) {
        Graph g = forward.copy();
        if (verify) {
            GraphVerifier.verify(g, "BuildForwardGraph");
        }
        for (Pass p : PASSES) {
            if (!p.appliesTo(kind) || (p.name().startsWith("Fuse") && disabled.contains(p.name()))) {
                continue;
            }
            p.run(g, kind);
            if (verify) {
                GraphVerifier.verify(g, p.name());
            }
            if (afterEach != null) {
                afterEach.accept(p.name(), g);
            }
        }
        return g;
    }
}
