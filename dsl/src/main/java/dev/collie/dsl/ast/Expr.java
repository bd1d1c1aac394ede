package dev.collie.dsl.ast;

import dev.collie.dsl.Span;
import java.util.List;

/** Expressions: constant arithmetic over hyper-parameters and, inside forward bodies, tensor code. */
public sealed interface Expr {

    Span span();

    record IntLit(Span span, long value) implements Expr {}

    record FloatLit(Span span, double value) implements Expr {}

    record BoolLit(Span span, boolean value) implements Expr {}

    record StringLit(Span span, String value) implements Expr {}

    record Name(Span span, String name) implements Expr {}

    /** {@code parallel.tensor}, {@code parallel.pipeline.stages}: a path into the parallel section. */
    record ParallelRef(Span span, List<String> path) implements Expr {}

    record Unary(Span span, String op, Expr operand) implements Expr {}

    record Binary(Span span, String op, Expr left, Expr right) implements Expr {}

    record If(Span span, Expr condition, Expr then, Expr otherwise) implements Expr {}

    /** A call of a builtin op or a block; {@code name} is null for positional arguments. */
    record Call(Span span, String callee, Span calleeSpan, List<Arg> args) implements Expr {}

    record Arg(Span span, String name, Expr value) {}
}
