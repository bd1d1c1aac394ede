package dev.collie.runtime.exec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.checkpoint.CheckpointException;
import dev.collie.runtime.checkpoint.SafetensorsFile;
import dev.collie.runtime.checkpoint.SafetensorsWriter;
import dev.collie.runtime.checkpoint.StDType;
import dev.collie.runtime.checkpoint.TensorInfo;
import dev.collie.runtime.testing.Fixtures;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A checkpoint that does not fit the model names the file and the tensor. */
class CheckpointErrorsTest {

    static final String MODEL = "../models/llama.collie";

    /** Copies the llama fixture, letting {@code edit} replace or drop (null) each tensor entry. */
    static Path forge(Path tmp, Function<SafetensorsWriter.Entry, SafetensorsWriter.Entry> edit, Arena arena)
            throws Exception {
        Path src = Fixtures.fixture("llama-tiny-a");
        Path dir = tmp.resolve("ckpt");
        Files.createDirectories(dir);
        Files.copy(src.resolve("config.json"), dir.resolve("config.json"));
        var entries = new ArrayList<SafetensorsWriter.Entry>();
        try (SafetensorsFile f = SafetensorsFile.open(src.resolve("model.safetensors"))) {
            for (TensorInfo t : f.tensors().values()) {
                MemorySegment copy = arena.allocate(t.end() - t.begin(), 8);
                copy.copyFrom(f.raw(t.name()));
                var e = edit.apply(new SafetensorsWriter.Entry(t.name(), t.dtype(), t.shape(), copy));
                if (e != null) {
                    entries.add(e);
                }
            }
        }
        SafetensorsWriter.write(dir.resolve("model.safetensors"), entries, Map.of("format", "pt"));
        return dir;
    }

    static CheckpointException open(Path dir) {
        return assertThrows(CheckpointException.class,
                () -> Session.open(Session.ModelSpec.of(Path.of(MODEL), null, Map.of()), dir, 0).close());
    }

    @Test
    void missingTensor(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = forge(tmp, e -> e.name().equals("model.layers.1.mlp.up_proj.weight") ? null : e, arena);
            CheckpointException ex = open(dir);
            assertEquals(dir + ": error: tensor 'model.layers.1.mlp.up_proj.weight': missing from the checkpoint (the "
                    + "model declares it at llama.collie:63:9 as 'decoder.1.w_up' with shape [172, 64])", ex.getMessage());
        }
    }

    @Test
    void wrongShape(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = forge(tmp, e -> e.name().equals("model.norm.weight")
                    ? new SafetensorsWriter.Entry(e.name(), e.dtype(), new long[] {8, 8}, e.data()) : e, arena);
            CheckpointException ex = open(dir);
            assertTrue(ex.getMessage().startsWith(dir.resolve("model.safetensors") + ": error: tensor 'model.norm.weight': "
                    + "has shape [8, 8], but the model declares [64]"), ex.getMessage());
        }
    }

    @Test
    void wrongDtype(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = forge(tmp, e -> e.name().equals("model.norm.weight")
                    ? new SafetensorsWriter.Entry(e.name(), StDType.I32, e.shape(), e.data()) : e, arena);
            CheckpointException ex = open(dir);
            assertTrue(ex.getMessage().contains("tensor 'model.norm.weight': has dtype I32"), ex.getMessage());
        }
    }

    @Test
    void configThatContradictsThePlan(@TempDir Path tmp) throws Exception {
        Path plan = tmp.resolve("p.json");
        dev.collie.compiler.plan.PlanJson.write(dev.collie.compiler.Compiler.compile(dev.collie.compiler.Compiler.resolve(
                dev.collie.compiler.Compiler.load(Path.of(MODEL)), "15m", null, Map.of()), false, null), plan);
        Path fixture = Fixtures.fixture("llama-tiny-a");
        CheckpointException ex = assertThrows(CheckpointException.class,
                () -> Session.open(Session.ModelSpec.of(plan, null, Map.of()), fixture, 0).close());
        assertTrue(ex.getMessage().contains("config.json: error: \"vocab_size\" is 128, but the plan was compiled with "
                + "vocab = 32000"), ex.getMessage());
    }

}
