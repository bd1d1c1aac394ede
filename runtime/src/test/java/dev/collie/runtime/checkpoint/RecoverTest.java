package dev.collie.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a save killed between its two renames leaves behind, and how the next run repairs it. */
class RecoverTest {

    @Test
    void aCheckpointMovedAsideIsPutBackAndLeftoversGo(@TempDir Path dir) throws Exception {
        // killed after "final" stepped aside and before the new one was renamed in
        Files.createDirectories(dir.resolve(".final.old-1a2b"));
        Files.writeString(dir.resolve(".final.old-1a2b").resolve("model.safetensors"), "previous");
        Files.createDirectories(dir.resolve(".final.tmp-3c4d"));
        // a completed save next to a stale leftover
        Files.createDirectories(dir.resolve("step-00000002"));
        Files.createDirectories(dir.resolve(".step-00000002.old-5e6f"));
        Files.createDirectories(dir.resolve(".step-00000004.tmp-7a8b"));

        assertEquals(List.of("final"), HfCheckpointWriter.recover(dir));
        assertEquals("previous", Files.readString(dir.resolve("final").resolve("model.safetensors")));
        assertFalse(Files.exists(dir.resolve(".final.tmp-3c4d")));
        assertFalse(Files.exists(dir.resolve(".step-00000002.old-5e6f")));
        assertFalse(Files.exists(dir.resolve(".step-00000004.tmp-7a8b")));
        assertTrue(Files.isDirectory(dir.resolve("step-00000002")));
    }
}
