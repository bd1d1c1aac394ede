package dev.collie.runtime.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A Hugging Face model directory: {@code config.json} plus weights in either a single
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}. When both
 * are present the index wins.
 *
 * <p>Shards are mapped lazily, the first time one of their tensors is touched, and stay mapped
 * until {@link #close()}.
 */
public final class HfCheckpoint implements AutoCloseable {

    static final String CONFIG_FILE = "config.json";
    static final String SINGLE_FILE = "model.safetensors";
    static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path dir;
    private final ObjectNode config;
    private final Map<String, Path> fileOf;
    private final Map<Path, SafetensorsFile> opened = new HashMap<>();
    private boolean closed;

    private HfCheckpoint(Path dir, ObjectNode config, Map<String, Path> fileOf) {
        this.dir = dir;
        this.config = config;
        this.fileOf = Collections.unmodifiableMap(fileOf);
    }

    public static HfCheckpoint open(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new CheckpointException(dir, Files.exists(dir) ? "not a directory" : "checkpoint directory not found");
        }
        ObjectNode config = Json.readObject(dir.resolve(CONFIG_FILE));
        Path index = dir.resolve(INDEX_FILE);
        Path single = dir.resolve(SINGLE_FILE);
        if (Files.exists(index)) {
            return new HfCheckpoint(dir, config, readIndex(dir, index));
        }
        if (Files.exists(single)) {
            // The tensor list lives in the file's header, so a single file is opened right away.
            SafetensorsFile file = SafetensorsFile.open(single);
            Map<String, Path> fileOf = new LinkedHashMap<>();
            file.tensors().keySet().forEach(name -> fileOf.put(name, single));
            HfCheckpoint ckpt = new HfCheckpoint(dir, config, fileOf);
            ckpt.opened.put(single, file);
            return ckpt;
        }
        throw new CheckpointException(dir, "no " + SINGLE_FILE + " or " + INDEX_FILE + " found");
    }

    public Path dir() {
        return dir;
    }

    public ObjectNode config() {
        return config;
    }

    /** All tensor names, in header or index order. */
    public Set<String> tensorNames() {
        return fileOf.keySet();
    }

    /** The tensor's layout, or null if the checkpoint has no such tensor. Maps its shard if needed. */
    public TensorInfo info(String name) {
        Path file = fileOf.get(name);
        return file == null ? null : fileFor(name, file).tensors().get(name);
    }

    /** The safetensors file holding the tensor, or null if the checkpoint has no such tensor. */
    public Path fileOf(String name) {
        return fileOf.get(name);
    }

    /** See {@link SafetensorsFile#readAsF32}. */
    public void readAsF32(String name, MemorySegment dst) {
        fileFor(name).readAsF32(name, dst);
    }

    /** See {@link SafetensorsFile#readAsF32(String, long, long, MemorySegment)}. */
    public void readAsF32(String name, long first, long n, MemorySegment dst) {
        fileFor(name).readAsF32(name, first, n, dst);
    }

    /** See {@link SafetensorsFile#readI64}. */
    public long[] readI64(String name) {
        return fileFor(name).readI64(name);
    }

    @Override
    public synchronized void close() {
        closed = true;
        opened.values().forEach(SafetensorsFile::close);
        opened.clear();
    }

    private SafetensorsFile fileFor(String name) {
        Path file = fileOf.get(name);
        if (file == null) {
            throw new CheckpointException(dir, "no tensor named '" + name + "'");
        }
        return fileFor(name, file);
    }

    private SafetensorsFile fileFor(String name, Path file) {
        SafetensorsFile sf = shard(file);
        if (!sf.tensors().containsKey(name)) {
            throw new CheckpointException(file, name, "listed in " + INDEX_FILE + " but missing from this shard");
        }
        return sf;
    }

    private synchronized SafetensorsFile shard(Path file) {
        if (closed) {
            throw new IllegalStateException("checkpoint " + dir + " is closed");
        }
        return opened.computeIfAbsent(file, SafetensorsFile::open);
    }

    private static Map<String, Path> readIndex(Path dir, Path index) {
        JsonNode weightMap = Json.readObject(index).get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw new CheckpointException(index, "missing or non-object 'weight_map'");
        }
        Path root = dir.toAbsolutePath().normalize();
        Map<String, Path> fileOf = new LinkedHashMap<>();
        Map<String, Path> shards = new HashMap<>();
        for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
            if (!e.getValue().isTextual()) {
                throw new CheckpointException(index, e.getKey(), "weight_map value is not a file name");
            }
            String shardName = e.getValue().textValue();
            Path shard = shards.get(shardName);
            if (shard == null) {
                shard = dir.resolve(shardName);
                // A crafted index must not make us map files outside the checkpoint.
                if (!root.equals(shard.toAbsolutePath().normalize().getParent())) {
                    throw new CheckpointException(index, e.getKey(), "shard '" + shardName + "' is outside the checkpoint directory");
                }
                if (!Files.isRegularFile(shard)) {
                    throw new CheckpointException(index, "shard '" + shardName + "' not found");
                }
                shards.put(shardName, shard);
            }
            fileOf.put(e.getKey(), shard);
        }
        return fileOf;
    }
}
