package dev.collie.dsl.ast;

import dev.collie.dsl.Span;
import java.util.List;

/** Declarations of a model file. */
public sealed interface Decl {

    Span span();

    enum Type { INT, FLOAT, BOOL, STRING }

    /** {@code dim: int = 4096} inside {@code hyper { }}. */
    record Hyper(Span span, String name, Type type, Expr defaultValue) implements Decl {}

    record Assign(Span span, String name, Expr value) {}

    /** {@code preset 7B { dim = 4096, ... }}. */
    record Preset(Span span, String name, List<Assign> assigns) implements Decl {}

    /** {@code dim = "hidden_size"} inside {@code config { }}: where config.json keeps this hyper-parameter. */
    record ConfigKey(Span span, String hyper, String key) implements Decl {}

    /** {@code require cond : "message"}: a constraint checked for every hyper-parameter choice. */
    record Require(Span span, Expr condition, String message) implements Decl {}

    /** {@code let head_dim = dim / heads}: a derived constant. */
    record Let(Span span, String name, Expr value) implements Decl {}

    /** {@code normal(0.02)}, {@code zeros}, {@code ones}. */
    record Init(Span span, String kind, List<Expr> args) {}

    /**
     * A trainable tensor: logical shape, initialisation, checkpoint name (with {i} for the layer
     * index of a repeated block), whether the checkpoint stores it transposed, and a presence condition.
     */
    record Param(Span span, String name, List<Expr> shape, Init init, String checkpointName,
                 Span checkpointSpan, boolean storedTransposed, Expr condition) implements Decl {}

    record Formal(Span span, String name, List<Expr> shape, boolean integer) {}

    record Forward(Span span, List<Formal> formals, List<Expr> resultShape, List<Stmt> body) implements Decl {}

    /**
     * A block: parameters and a forward; with {@code [i in n]} it is repeated n times and calling it
     * runs every repetition in order, each with its own parameters.
     */
    record Block(Span span, String name, String indexName, Expr repeat, List<Param> params, List<Let> lets,
                 Forward forward) implements Decl {}

    /** {@code key = value} or {@code group { key = value }} in a parallel or train section; path is [group, key]. */
    record Setting(Span span, List<String> path, Expr value) implements Decl {}

    record Parallel(Span span, List<Setting> settings) implements Decl {}

    /** The training recipe: optimizer, schedule, batch, evaluation and saving (keys in TrainSchema). */
    record Train(Span span, List<Setting> settings) implements Decl {}
}
