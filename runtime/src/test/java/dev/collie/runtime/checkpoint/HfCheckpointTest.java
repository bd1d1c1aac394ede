package dev.collie.runtime.checkpoint;

import static dev.collie.runtime.checkpoint.TestData.assertUserMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.runtime.checkpoint.SafetensorsWriter.Entry;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HfCheckpointTest {

    @TempDir
    Path tmp;

    @AfterEach
    void resetHook() {
        HfCheckpointWriter.beforeSwap = IoHook.NONE;
    }

    private static ObjectNode config() {
        ObjectNode c = Json.MAPPER.createObjectNode();
        c.put("model_type", "llama").put("hidden_size", 4).putArray("architectures").add("LlamaForCausalLM");
        return c;
    }

    /** 40 + 24 + 16 + 8 bytes of F32/BF16/I64 tensors. */
    private static List<Entry> tensors() {
        return List.of(
                new Entry("model.embed.weight", StDType.F32, new long[] {2, 5}, TestData.randomF32(10, 1)),
                new Entry("model.layers.0.w", StDType.BF16, new long[] {12}, TestData.randomBytes(24, 2)),
                new Entry("model.layers.1.w", StDType.F32, new long[] {4}, TestData.randomF32(4, 3)),
                new Entry("ids", StDType.I64, new long[] {1}, TestData.i64(42)));
    }

    private List<String> listing(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private void assertReadsBack(Path dir, List<Entry> expected) {
        try (HfCheckpoint ckpt = HfCheckpoint.open(dir)) {
            assertEquals(config(), ckpt.config());
            assertEquals(expected.size(), ckpt.tensorNames().size());
            for (Entry e : expected) {
                TensorInfo info = ckpt.info(e.name());
                assertEquals(e.dtype(), info.dtype());
                assertArrayEquals(e.shape(), info.shape());
                try (SafetensorsFile f = SafetensorsFile.open(ckpt.fileOf(e.name()))) {
                    TestData.assertSameBytes(e.data(), f.raw(e.name()));
                    assertEquals(Map.of("format", "pt"), f.metadata());
                }
                if (e.dtype() == StDType.I64) {
                    assertArrayEquals(new long[] {42}, ckpt.readI64(e.name()));
                } else {
                    MemorySegment dst = Arena.ofAuto().allocate(e.numel() * 4);
                    ckpt.readAsF32(e.name(), dst);
                    for (long i = 0; i < e.numel(); i++) {
                        float want = e.dtype() == StDType.F32
                                ? e.data().getAtIndex(SafetensorsFile.F32_LE, i)
                                : Bf16.bf16ToF32(e.data().getAtIndex(SafetensorsFile.I16_LE, i));
                        assertEquals(Float.floatToRawIntBits(want),
                                Float.floatToRawIntBits(dst.getAtIndex(SafetensorsFile.F32_LE, i)));
                    }
                }
            }
        }
    }

    @Test
    void smallModelIsSavedAsSingleFile() throws Exception {
        Path dir = tmp.resolve("ckpt");
        HfCheckpointWriter.save(dir, config(), tensors(), 1 << 20);
        assertEquals(List.of("config.json", "model.safetensors"), listing(dir));
        assertTrue(Files.readString(dir.resolve("config.json")).startsWith("{\n  \"model_type\": \"llama\",\n"));
        assertReadsBack(dir, tensors());
        assertEquals(List.of("ckpt"), listing(tmp));
    }

    @Test
    void largeModelIsShardedWithIndex() throws Exception {
        Path dir = tmp.resolve("ckpt");
        HfCheckpointWriter.save(dir, config(), tensors(), 64);
        // 40 + 24 fills the first shard exactly; 16 + 8 go to the second.
        assertEquals(List.of("config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json"), listing(dir));
        String index = Files.readString(dir.resolve("model.safetensors.index.json"));
        assertEquals("""
                {
                  "metadata": {
                    "total_size": 88
                  },
                  "weight_map": {
                    "ids": "model-00002-of-00002.safetensors",
                    "model.embed.weight": "model-00001-of-00002.safetensors",
                    "model.layers.0.w": "model-00001-of-00002.safetensors",
                    "model.layers.1.w": "model-00002-of-00002.safetensors"
                  }
                }
                """, index);
        assertReadsBack(dir, tensors());
        try (HfCheckpoint ckpt = HfCheckpoint.open(dir)) {
            assertEquals(dir.resolve("model-00002-of-00002.safetensors"), ckpt.fileOf("ids"));
            assertNull(ckpt.info("absent"));
            assertNull(ckpt.fileOf("absent"));
            assertUserMessage(assertThrows(CheckpointException.class, () -> ckpt.readI64("absent")),
                    dir, null, "no tensor named 'absent'");
        }
    }

    @Test
    void splitFollowsHuggingFaceRules() {
        List<Entry> t = new ArrayList<>(tensors());
        t.add(1, new Entry("big", StDType.U8, new long[] {100}, TestData.randomBytes(100, 9)));
        List<List<String>> names = HfCheckpointWriter.split(t, 50).stream()
                .map(s -> s.stream().map(Entry::name).toList()).toList();
        // The oversized tensor is emitted alone, ahead of the shard still being filled.
        assertEquals(List.of(
                List.of("big"),
                List.of("model.embed.weight"),
                List.of("model.layers.0.w", "model.layers.1.w", "ids")), names);
        assertEquals(1, HfCheckpointWriter.split(List.of(), 50).size());
    }

    @Test
    void extraFilesAreCopied() throws Exception {
        Path tok = Files.writeString(tmp.resolve("tokenizer.json"), "{\"version\":\"1.0\"}");
        Path dir = tmp.resolve("ckpt");
        HfCheckpointWriter.save(dir, config(), tensors(), 1 << 20, List.of(tok));
        assertEquals(List.of("config.json", "model.safetensors", "tokenizer.json"), listing(dir));
        assertEquals("{\"version\":\"1.0\"}", Files.readString(dir.resolve("tokenizer.json")));

        Path missing = tmp.resolve("tokenizer_config.json");
        assertUserMessage(assertThrows(CheckpointException.class,
                () -> HfCheckpointWriter.save(dir, config(), tensors(), 1 << 20, List.of(missing))),
                missing, null, "not found");
        assertThrows(IllegalArgumentException.class, () -> HfCheckpointWriter.save(dir, config(), tensors(), 1 << 20,
                List.of(Files.writeString(tmp.resolve("config.json"), "{}"))));
    }

    @Test
    void saveReplacesPreviousCheckpointCompletely() throws Exception {
        Path dir = tmp.resolve("ckpt");
        HfCheckpointWriter.save(dir, config(), tensors(), 64);
        List<Entry> smaller = tensors().subList(0, 2);
        HfCheckpointWriter.save(dir, config(), smaller, 1 << 20);
        // No stale shards or index from the sharded save may survive.
        assertEquals(List.of("config.json", "model.safetensors"), listing(dir));
        assertReadsBack(dir, smaller);
        assertEquals(List.of("ckpt"), listing(tmp));
    }

    @Test
    void failedSaveLeavesPreviousCheckpointUntouched() throws Exception {
        Path dir = tmp.resolve("ckpt");
        HfCheckpointWriter.save(dir, config(), tensors(), 64);
        byte[] shard1 = Files.readAllBytes(dir.resolve("model-00001-of-00002.safetensors"));

        HfCheckpointWriter.beforeSwap = pending -> {
            assertTrue(Files.exists(pending.resolve("model.safetensors")));
            throw new IOException("No space left on device");
        };
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> HfCheckpointWriter.save(dir, config(), tensors().subList(0, 1), 1 << 20));

        assertUserMessage(e, dir, null, "No space left on device");
        assertArrayEquals(shard1, Files.readAllBytes(dir.resolve("model-00001-of-00002.safetensors")));
        assertReadsBack(dir, tensors());
        assertEquals(List.of("ckpt"), listing(tmp), "temporary directory must be removed");
    }

    @Test
    void missingDirectory() {
        Path dir = tmp.resolve("nope");
        assertUserMessage(assertThrows(CheckpointException.class, () -> HfCheckpoint.open(dir)),
                dir, null, "checkpoint directory not found");
    }

    @Test
    void invalidConfigNamesFileAndPosition() throws Exception {
        Path dir = Files.createDirectory(tmp.resolve("ckpt"));
        Path config = Files.writeString(dir.resolve("config.json"), "{\n  \"a\": 1,\n  oops\n}\n");
        assertUserMessage(assertThrows(CheckpointException.class, () -> HfCheckpoint.open(dir)),
                config, null, "invalid JSON at line 3, column 3");
    }

    @Test
    void missingConfig() throws Exception {
        Path dir = Files.createDirectory(tmp.resolve("ckpt"));
        assertUserMessage(assertThrows(CheckpointException.class, () -> HfCheckpoint.open(dir)),
                dir.resolve("config.json"), null, "no such file");
    }

    @Test
    void noWeights() throws Exception {
        Path dir = Files.createDirectory(tmp.resolve("ckpt"));
        Files.writeString(dir.resolve("config.json"), "{}");
        assertUserMessage(assertThrows(CheckpointException.class, () -> HfCheckpoint.open(dir)),
                dir, null, "no model.safetensors or model.safetensors.index.json");
    }

    @Test
    void indexWithMissingShardNamesIndexAndShard() throws Exception {
        Path dir = tmp.resolve("ckpt");
        HfCheckpointWriter.save(dir, config(), tensors(), 64);
        Files.delete(dir.resolve("model-00002-of-00002.safetensors"));
        assertUserMessage(assertThrows(CheckpointException.class, () -> HfCheckpoint.open(dir)),
                dir.resolve("model.safetensors.index.json"), null, "shard 'model-00002-of-00002.safetensors' not found");
    }

    @Test
    void indexCannotPointOutsideCheckpoint() throws Exception {
        Path dir = Files.createDirectory(tmp.resolve("ckpt"));
        Files.writeString(dir.resolve("config.json"), "{}");
        Path index = Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"weight_map\":{\"w\":\"../secret.safetensors\"}}");
        assertUserMessage(assertThrows(CheckpointException.class, () -> HfCheckpoint.open(dir)),
                index, "w", "outside the checkpoint directory");
    }

    @Test
    void indexListingTensorAbsentFromShard() throws Exception {
        Path dir = tmp.resolve("ckpt");
        HfCheckpointWriter.save(dir, config(), tensors(), 64);
        Path index = dir.resolve("model.safetensors.index.json");
        Files.writeString(index, Files.readString(index).replace("\"ids\"", "\"ghost\""));
        try (HfCheckpoint ckpt = HfCheckpoint.open(dir)) {
            assertUserMessage(assertThrows(CheckpointException.class, () -> ckpt.info("ghost")),
                    dir.resolve("model-00002-of-00002.safetensors"), "ghost", "missing from this shard");
        }
    }
}
