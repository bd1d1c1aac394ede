package dev.collie.runtime.tokenizer;

import java.nio.file.Path;

/**
 * A tokenizer file could not be loaded. The message is always one line, {@code <file>: error:
 * <what>}, so a CLI can print it as is; the underlying exception (often a multi-line report from
 * the native library) stays available as the cause.
 */
public final class TokenizerException extends RuntimeException {

    private final Path file;
    private final String what;

    public TokenizerException(Path file, String what, Throwable cause) {
        super(file + ": error: " + oneLine(what), cause);
        this.file = file;
        this.what = oneLine(what);
    }

    public TokenizerException(Path file, String what) {
        this(file, what, null);
    }

    /** The file at fault. */
    public Path file() {
        return file;
    }

    /** The message without the file prefix. */
    public String what() {
        return what;
    }

    /** Collapses line breaks (and the indentation after them) so the message stays one line. */
    static String oneLine(String s) {
        if (s == null || s.isBlank()) {
            return "unknown error";
        }
        return s.strip().replaceAll("\\s*[\\r\\n]+\\s*", " ");
    }
}
