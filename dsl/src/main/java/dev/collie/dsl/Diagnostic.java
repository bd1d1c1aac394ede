package dev.collie.dsl;

/**
 * The one diagnostic type of the toolchain: a message at a source position. It renders as
 * {@code file:line:col: error: message}, then the source line and a caret under the culprit, the
 * way C compilers print, so editors and people read it the same way.
 */
public record Diagnostic(Severity severity, Span span, String message) {

    public enum Severity { ERROR, WARNING, NOTE }

    public static Diagnostic error(Span span, String message) {
        return new Diagnostic(Severity.ERROR, span, message);
    }

    public static Diagnostic note(Span span, String message) {
        return new Diagnostic(Severity.NOTE, span, message);
    }

    /** The headline alone, without the source excerpt. */
    public String headline() {
        return span + ": " + severity.name().toLowerCase() + ": " + message;
    }

    /** Headline, source line and caret; {@code source} may be null when the text is not at hand. */
    public String render(SourceFile source) {
        StringBuilder out = new StringBuilder(headline());
        if (source != null && span.line() > 0 && source.name().equals(span.file())) {
            String text = source.line(span.line());
            out.append('\n').append("  ").append(text.replace('\t', ' ')).append('\n').append("  ");
            int col = Math.max(1, span.col());
            out.append(" ".repeat(Math.min(col - 1, text.length())));
            int width = Math.max(1, Math.min(span.length(), Math.max(1, text.length() - (col - 1))));
            out.append('^').append("~".repeat(width - 1));
        }
        return out.toString();
    }
}
