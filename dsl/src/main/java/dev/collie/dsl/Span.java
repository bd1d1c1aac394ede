package dev.collie.dsl;

/**
 * A range of source text: 1-based line, 1-based column and a length in characters on that line.
 * Line 0 means "the whole file" (for errors about a file that has no position, e.g. unreadable).
 */
public record Span(String file, int line, int col, int length) {

    public static final Span NONE = new Span("<builtin>", 0, 0, 0);

    @Override
    public String toString() {
        return line == 0 ? file : file + ":" + line + ":" + col;
    }
}
