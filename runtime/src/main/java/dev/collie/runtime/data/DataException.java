package dev.collie.runtime.data;

import dev.collie.compiler.cli.CliSupport;
import java.nio.file.Path;

/** A problem with a data file, reported as {@code file:line: error: message}. */
public final class DataException extends RuntimeException implements CliSupport.UserError {

    public DataException(Path file, long line, String message) {
        super(file + (line > 0 ? ":" + line : "") + ": error: " + message, null, false, false);
    }

    @Override
    public String userMessage() {
        return getMessage();
    }
}
