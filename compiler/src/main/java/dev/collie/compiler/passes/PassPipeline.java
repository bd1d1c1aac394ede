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
            new FuseRotaryAttention(),
            new FuseSwiGlu(),
            new FuseDenseBias(),
            new FuseDenseActivation(),
            new FuseDenseResidual(),
            new DifferentiateGraph(),
            new InsertNormClipping(),
            new FuseHeadUpdate(),
            new FuseWeightUpdate(),
            new FuseEmbeddingUpdate(),
            new RecomputeActivations(),
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
        return run(forward, kind, afterEach, verify, CompileOptions.DEFAULT);
    }

    /**
     * {@link #run(Graph, ProgramKind, BiConsumer, boolean)} with {@code options}: Fuse passes it names
     * are left out (the rest are needed for correctness), and the options-dependent passes see it.
     */
    public static Graph run(Graph forward, ProgramKind kind, BiConsumer<String, Graph> afterEach, boolean verify,
                            CompileOptions options) {
        Graph g = forward.copy();
        if (verify) {
            GraphVerifier.verify(g, "BuildForwardGraph");
        }
        for (Pass p : PASSES) {
            if (!p.appliesTo(kind, options)
                    || (p.name().startsWith("Fuse") && options.disabledPasses().contains(p.name()))) {
                continue;
            }
            p.run(g, kind, options);
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
