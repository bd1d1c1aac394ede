package dev.collie.dsl;

import java.util.List;

/**
 * A user error: one or more diagnostics. The CLIs print {@link #render} and exit non-zero; no
 * stack trace reaches the user. Internal bugs are plain Java exceptions and are not caught this way.
 */
public final class CollieException extends RuntimeException {

    private final List<Diagnostic> diagnostics;
    private final transient java.util.Map<String, SourceFile> sources = new java.util.HashMap<>();

    public CollieException(Diagnostic first, Diagnostic... more) {
        this(concat(first, more));
    }

    public CollieException(List<Diagnostic> diagnostics) {
        super(diagnostics.isEmpty() ? "error" : diagnostics.getFirst().headline(), null, false, false);
        this.diagnostics = List.copyOf(diagnostics);
    }

    private static List<Diagnostic> concat(Diagnostic first, Diagnostic... more) {
        var all = new java.util.ArrayList<Diagnostic>();
        all.add(first);
        all.addAll(List.of(more));
        return all;
    }

    public static CollieException at(Span span, String message) {
        return new CollieException(Diagnostic.error(span, message));
    }

    public List<Diagnostic> diagnostics() {
        return diagnostics;
    }

    /** Attaches a source text so that {@link #render()} can show the offending line of that file. */
    public CollieException withSource(SourceFile source) {
        sources.putIfAbsent(source.name(), source);
        return this;
    }

    public String render() {
        StringBuilder out = new StringBuilder();
        for (Diagnostic d : diagnostics) {
            if (!out.isEmpty()) {
                out.append('\n');
            }
            out.append(d.render(sources.get(d.span().file())));
        }
        return out.toString();
    }
}
