package dev.collie.runtime.report;

import dev.collie.runtime.checkpoint.CheckpointException;
import java.io.IOException;
import java.io.Serial;
import java.nio.file.FileSystemException;
import java.nio.file.Path;

/**
 * A file of a run's output folder (metrics, plot, settings) could not be written: a full disk, a
 * read-only folder. One line naming the file, {@code <file>: error: cannot write: <why>}, because
 * the exception a failed write throws names no file at all ("No space left on device").
 */
public final class OutputError extends RuntimeException implements dev.collie.compiler.cli.CliSupport.UserError {

    @Serial
    private static final long serialVersionUID = 1L;

    /** {@code file} could not be written; {@code cause} may name no file, or a temporary one. */
    public OutputError(Path file, IOException cause) {
        super(oneLine(file + ": error: cannot write: " + CheckpointException.describe(cause)), cause);
    }

    /** An operation on the file {@code cause} names failed (creating a folder, renaming a file). */
    public OutputError(FileSystemException cause) {
        super(oneLine(cause.getFile() + ": error: " + CheckpointException.describe(cause)), cause);
    }

    private static String oneLine(String message) {
        // The reason comes from the OS or the JDK; keep the promise of one line.
        return message.replaceAll("\\R", " ");
    }

    @Override
    public String userMessage() {
        return getMessage();
    }
}
