package dev.collie.compiler.passes;

import dev.collie.compiler.ir.Graph;

/**
 * A pass that only makes sense under the compile options (which optimizer, which checkpointing): it
 * implements the two-argument forms alone, and the option-free ones refuse, so that no caller runs it
 * without deciding those options.
 */
public abstract class OptionsPass implements Pass {

    @Override
    public final boolean appliesTo(ProgramKind kind) {
        return false;
    }

    @Override
    public abstract boolean appliesTo(ProgramKind kind, CompileOptions options);

    @Override
    public final void run(Graph graph, ProgramKind kind) {
        throw new IllegalStateException(name() + " needs its options");
    }

    @Override
    public abstract void run(Graph graph, ProgramKind kind, CompileOptions options);
}
