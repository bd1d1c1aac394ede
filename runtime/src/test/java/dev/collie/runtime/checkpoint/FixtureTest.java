package dev.collie.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** A real checkpoint written by the Python reference tooling (tiny Llama). */
class FixtureTest {

    private static Path fixtureDir() throws Exception {
        return Path.of(FixtureTest.class.getResource("/fixtures/llama-tiny-a/config.json").toURI()).getParent();
    }

    @Test
    void readsReferenceCheckpoint() throws Exception {
        try (HfCheckpoint ckpt = HfCheckpoint.open(fixtureDir())) {
            assertEquals(21, ckpt.tensorNames().size());
            assertEquals("llama", ckpt.config().get("model_type").asText());
            TensorInfo k = ckpt.info("model.layers.0.self_attn.k_proj.weight");
            assertEquals(StDType.F32, k.dtype());
            assertArrayEquals(new long[] {32, 64}, k.shape());

            MemorySegment dst = Arena.ofAuto().allocate(k.numel() * 4);
            ckpt.readAsF32(k.name(), dst);
            try (SafetensorsFile f = SafetensorsFile.open(ckpt.fileOf(k.name()))) {
                TestData.assertSameBytes(f.raw(k.name()), dst);
                assertEquals("pt", f.metadata().get("format"));
            }
        }
    }
}
