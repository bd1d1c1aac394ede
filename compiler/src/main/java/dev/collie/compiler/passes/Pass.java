package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;

/** One named rewrite of a program's graph. Every pass lives in its own file, named VerbNoun. */
public interface Pass {

    String name();

    boolean appliesTo(ProgramKind kind);

    /** Whether the pass runs for this program under these options (most passes ignore them). */
    default boolean appliesTo(ProgramKind kind, CompileOptions options) {
        return appliesTo(kind);
    }

    void run(Graph graph, ProgramKind kind);

    /** Runs the pass under these options (most passes ignore them). */
    default void run(Graph graph, ProgramKind kind, CompileOptions options) {
        run(graph, kind);
    }
}
