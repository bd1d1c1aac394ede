package dev.collie.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.exec.Session;
import dev.collie.runtime.optim.Optimizers;
import dev.collie.runtime.tokenizer.Tokenizers;
import dev.collie.runtime.train.TrainSettings;
import dev.collie.runtime.train.Trainer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A full disk while a run saves: a clear error naming the checkpoint, and the previous one untouched. */
class DiskFullDuringTrainingTest {

    @AfterEach
    void restore() {
        HfCheckpointWriter.beforeSwap = IoHook.NONE;
    }

    @Test
    void aFailedSaveLeavesThePreviousCheckpointIntact(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("train.jsonl");
        Files.writeString(data, "{\"text\": \"abc\"}\n{\"text\": \"defg\"}\n{\"text\": \"hij\"}\n");
        Map<String, Object> flags = new LinkedHashMap<>();
        flags.put("data", data.toString());
        flags.put("steps", 4L);
        flags.put("save_every", 2L);
        flags.put("batch_size", 1L);
        flags.put("tokenizer", "byte");
        flags.put("quiet", true);
        Path out = tmp.resolve("run");
        Path good = out.resolve("checkpoints").resolve("step-00000002");
        try (Session s = Session.open(new Session.ModelSpec(Path.of("../models/llama.collie"), null, "tiny",
                Map.of("vocab", "259")), null, 0)) {
            TrainSettings settings = TrainSettings.resolve(Map.of(), null, flags);
            // The disk fills up after the first checkpoint: every later save fails before its swap.
            HfCheckpointWriter.beforeSwap = pending -> {
                if (Files.exists(good.resolve("model.safetensors"))) {
                    throw new IOException("No space left on device");
                }
            };
            Trainer t = new Trainer(s, settings, Tokenizers.byteLevel(), Optimizers.create(settings, s.params()), out,
                    null, null, new PrintStream(new ByteArrayOutputStream(), true));
            CheckpointException e = assertThrows(CheckpointException.class, t::run);
            assertTrue(e.getMessage().contains("No space left on device"), e.getMessage());
            assertTrue(e.getMessage().contains("final"), e.getMessage());
        }
        // The step-2 checkpoint loads, bit for bit as written, and no half-written folder is visible.
        byte[] weights = Files.readAllBytes(good.resolve("model.safetensors"));
        try (Session back = Session.open(Session.ModelSpec.of(Path.of("../models/llama.collie"), null, Map.of()), good, 0)) {
            assertEquals(259, back.vocabSize());
        }
        assertArrayEquals(weights, Files.readAllBytes(good.resolve("model.safetensors")));
        try (Stream<Path> left = Files.list(out)) {
            assertTrue(left.noneMatch(p -> p.getFileName().toString().equals("final")));
        }
    }
}
