package dev.collie.runtime.checkpoint;

import java.io.IOException;
import java.io.Serial;
import java.nio.charset.CharacterCodingException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * A problem with a checkpoint on disk: unreadable, malformed, or not writable. Its message is a
 * single line meant to be shown to users as is (the CLI prints it instead of a stack trace):
 * {@code <file>: error: tensor '<name>': <what>}, or {@code <file>: error: <what>} when the
 * problem is not tied to one tensor.
 */
public final class CheckpointException extends RuntimeException implements dev.collie.compiler.cli.CliSupport.UserError {

    @Serial
    private static final long serialVersionUID = 1L;

    // Path is not Serializable; the formatted message already carries it.
    private final transient Path file;
    private final String tensor;

    public CheckpointException(Path file, String what) {
        this(file, null, what, null);
    }

    public CheckpointException(Path file, String tensor, String what) {
        this(file, tensor, what, null);
    }

    public CheckpointException(Path file, String tensor, String what, Throwable cause) {
        super(format(file, tensor, what), cause);
        this.file = file;
        this.tensor = tensor;
    }

    /** The file or directory the problem is about. */
    public Path file() {
        return file;
    }

    /** The tensor the problem is about, or null. */
    public String tensor() {
        return tensor;
    }

    private static String format(Path file, String tensor, String what) {
        String msg = file + ": error: " + (tensor == null ? "" : "tensor '" + tensor + "': ") + what;
        // Messages embed text from elsewhere (JSON parser, OS); keep the promise of one line.
        return msg.replaceAll("\\R", " ");
    }

    /**
     * Turns an I/O failure into the short phrase users expect (like the OS's own wording) rather
     * than Java's exception text, which often repeats the path already at the start of the message.
     */
    public static String describe(IOException e) {
        return switch (e) {
            case NoSuchFileException x -> "no such file or directory";
            case CharacterCodingException x -> "not valid UTF-8 text";
            case AccessDeniedException x -> "permission denied";
            case FileSystemException x when x.getReason() != null -> x.getReason();
            default -> e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
        };
    }

    @Override
    public String userMessage() {
        return getMessage();
    }
}
