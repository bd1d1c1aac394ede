package dev.collie.dsl.ast;

import dev.collie.dsl.Span;
import java.util.List;

/** Statements of a forward body. */
public sealed interface Stmt {

    Span span();

    /** {@code let a = e} or {@code let q, k, v = split(e, 3)}; names may shadow earlier ones. */
    record Let(Span span, List<String> names, List<Span> nameSpans, Expr value) implements Stmt {}

    record Return(Span span, Expr value) implements Stmt {}

    /** {@code output logits}: exposes a named value of the model-level forward (for eval, tests). */
    record Output(Span span, String name) implements Stmt {}

    /** {@code loss e}: the scalar training objective of the model-level forward. */
    record Loss(Span span, Expr value) implements Stmt {}
}
