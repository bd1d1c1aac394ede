package dev.collie.runtime.data;

import java.nio.file.Path;

/**
 * A problem with a data file, reported the way compilers do: {@code <file>:<line>: error: <what>}, on
 * one line, so editors and CI log viewers can jump to it.
 *
 * <p>{@code line} is 1-based and always at least 1: problems with the file as a whole (missing,
 * unreadable, empty) point at line 1, where the first example was expected.
 */
public final class DataError extends RuntimeException implements dev.collie.compiler.cli.CliSupport.UserError {

    private final Path file;
    private final long line;
    private final String what;

    public DataError(Path file, long line, String what) {
        this(file, line, what, null);
    }

    public DataError(Path file, long line, String what, Throwable cause) {
        super(format(file, line, what), cause);
        this.file = file;
        this.line = Math.max(1, line);
        this.what = what;
    }

    public Path file() {
        return file;
    }

    /** 1-based line of the offending row. */
    public long line() {
        return line;
    }

    /** The message without the location prefix. */
    public String what() {
        return what;
    }

    @Override
    public String userMessage() {
        return getMessage();
    }

    private static String format(Path file, long line, String what) {
        // Callers quote user text, but a stray newline (from a tokenizer or a JSON parser message)
        // would split the diagnostic across lines and break "file:line:" parsing, so flatten it here.
        String oneLine = what.replace("\r\n", " ").replace('\n', ' ').replace('\r', ' ');
        return file + ":" + Math.max(1, line) + ": error: " + oneLine;
    }
}
