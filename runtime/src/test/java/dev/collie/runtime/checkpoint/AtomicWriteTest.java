package dev.collie.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.checkpoint.SafetensorsWriter.Entry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AtomicWriteTest {

    @TempDir
    Path tmp;

    @AfterEach
    void resetHook() {
        SafetensorsWriter.beforeRename = IoHook.NONE;
    }

    private static List<Entry> tensor(float value) {
        return List.of(new Entry("w", StDType.F32, new long[] {1}, TestData.f32(value)));
    }

    private List<String> dirListing() throws IOException {
        try (Stream<Path> s = Files.list(tmp)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void failedWriteLeavesPreviousFileIntactAndNoTempBehind() throws Exception {
        Path file = tmp.resolve("model.safetensors");
        SafetensorsWriter.write(file, tensor(1f), null);
        byte[] before = Files.readAllBytes(file);

        AtomicReference<Path> pending = new AtomicReference<>();
        SafetensorsWriter.beforeRename = p -> {
            pending.set(p);
            throw new IOException("No space left on device");
        };
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> SafetensorsWriter.write(file, tensor(2f), null));

        TestData.assertUserMessage(e, file, null, "No space left on device");
        assertTrue(pending.get().getFileName().toString().startsWith(".model.safetensors.tmp-"), pending.get().toString());
        assertEquals(tmp.toAbsolutePath(), pending.get().getParent());
        assertArrayEquals(before, Files.readAllBytes(file));
        assertEquals(List.of("model.safetensors"), dirListing());
    }

    @Test
    void tempFileIsCompleteBeforeRename() throws Exception {
        Path file = tmp.resolve("a.safetensors");
        SafetensorsWriter.beforeRename = p -> {
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                assertEquals(1, f.tensors().size());
            }
        };
        SafetensorsWriter.write(file, tensor(3f), Map.of());
        assertEquals(List.of("a.safetensors"), dirListing());
    }

    @Test
    void successfulWriteReplacesPreviousFile() throws Exception {
        Path file = tmp.resolve("m.safetensors");
        SafetensorsWriter.write(file, tensor(1f), null);
        SafetensorsWriter.write(file, tensor(2f), null);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            TestData.assertSameBytes(TestData.f32(2f), f.raw("w"));
        }
        assertEquals(List.of("m.safetensors"), dirListing());
    }

    @Test
    void missingDirectoryIsReportedAgainstTheFile() {
        Path file = tmp.resolve("no/such/dir/m.safetensors");
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> SafetensorsWriter.write(file, tensor(1f), null));
        TestData.assertUserMessage(e, file, null, "cannot write: no such file or directory");
    }
}
