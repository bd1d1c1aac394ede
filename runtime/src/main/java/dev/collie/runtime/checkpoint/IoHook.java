package dev.collie.runtime.checkpoint;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Test seam: lets tests inject an I/O failure (say, a full disk) at the last moment before a
 * writer publishes its result, which is otherwise hard to provoke reliably, especially as root.
 */
@FunctionalInterface
interface IoHook {
    IoHook NONE = p -> {};

    /** Called with the temporary file or directory that is about to be renamed into place. */
    void run(Path pending) throws IOException;
}
