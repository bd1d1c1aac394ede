package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;

/** One named rewrite of a program's graph. Every pass lives in its own file, named VerbNoun. */
public interface Pass {

    String name();

    boolean appliesTo(ProgramKind kind);

    void run(Graph graph, ProgramKind kind);
}
