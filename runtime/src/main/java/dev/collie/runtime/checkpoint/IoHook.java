package dev.collie.runtime.checkpoint;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Test seam: lets tests inject an I/O failure (say, a full disk) at the last moment before a
 * writer publishes its result, which is otherwise hard to provoke reliably, especially as root;
 * and lets the kill tests stop a child process at an exact moment of a save, which a timer
 * cannot hit (the window between a save's two renames is microseconds wide).
 */
@FunctionalInterface
interface IoHook {
    IoHook NONE = p -> {};

    /**
     * Called with the file or directory being written; for the hooks that run just before a
     * rename, the one about to be renamed into place.
     */
    void run(Path pending) throws IOException;
}
