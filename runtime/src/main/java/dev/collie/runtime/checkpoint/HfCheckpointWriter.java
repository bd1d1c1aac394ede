package dev.collie.runtime.checkpoint;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.runtime.checkpoint.SafetensorsWriter.Entry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Saves a checkpoint directory in the Hugging Face layout ({@code config.json} plus
 * {@code model.safetensors}, or numbered shards and {@code model.safetensors.index.json}), so
 * that {@code transformers} and {@link HfCheckpoint} can load it.
 *
 * <p>The directory is replaced as a whole: everything is written and synced into a hidden
 * sibling first, and only then swapped in. A failure before the swap leaves the previous
 * checkpoint untouched, which matters when the previous checkpoint is the only good copy of hours
 * of training.
 */
public final class HfCheckpointWriter {

    /** Test seam: runs once the temporary directory is complete and synced, just before the swap. */
    static volatile IoHook beforeSwap = IoHook.NONE;

    /** Test seam: runs after the previous checkpoint stepped aside and before the new one is renamed in. */
    static volatile IoHook betweenRenames = IoHook.NONE;

    /** Test seam: runs once the new checkpoint is in place, before the previous one is deleted. */
    static volatile IoHook afterSwap = IoHook.NONE;

    private static final Map<String, String> SHARD_METADATA = Map.of("format", "pt");

    private HfCheckpointWriter() {}

    public static void save(Path dir, ObjectNode config, List<Entry> tensors, long shardBytes) {
        save(dir, config, tensors, shardBytes, List.of());
    }

    /**
     * Like {@link #save(Path, ObjectNode, List, long)}, also copying {@code extraFiles} (e.g.
     * tokenizer files) into the checkpoint under their own file names.
     *
     * @param shardBytes maximum tensor bytes per shard; a larger tensor gets a shard of its own
     */
    public static void save(Path dir, ObjectNode config, List<Entry> tensors, long shardBytes, List<Path> extraFiles) {
        if (shardBytes <= 0) {
            throw new IllegalArgumentException("shardBytes must be positive: " + shardBytes);
        }
        SafetensorsWriter.validate(tensors);
        checkExtraFiles(extraFiles);
        Path target = dir.toAbsolutePath().normalize();
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS) && !Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
            throw new CheckpointException(dir, "exists and is not a directory");
        }

        Path tmp = FsUtil.sibling(target, "tmp");
        Path old = null;
        boolean swapped = false;
        try {
            Files.createDirectories(target.getParent());
            Files.createDirectory(tmp);
            writeContents(tmp, config, tensors, shardBytes, extraFiles);
            FsUtil.syncDirectory(tmp);
            beforeSwap.run(tmp);
            // POSIX cannot rename a directory over a non-empty one, so the old one steps aside first.
            if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
                old = FsUtil.sibling(target, "old");
                Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
                betweenRenames.run(tmp);
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            swapped = true;
            afterSwap.run(target);
        } catch (IOException e) {
            throw new CheckpointException(dir, null, "cannot save checkpoint: " + CheckpointException.describe(e), e);
        } finally {
            if (!swapped) {
                restore(old, target);
                FsUtil.deleteQuietly(tmp);
            }
        }
        FsUtil.syncDirectory(target.getParent());
        if (old != null) {
            FsUtil.deleteQuietly(old);
        }
    }

    /**
     * Repairs what a save killed mid-way leaves in {@code parent}: a checkpoint moved aside
     * (".NAME.old-*") whose replacement never arrived is moved back to NAME, so the previous
     * checkpoint is visible again; other leftovers (".NAME.tmp-*", ".NAME.old-*" next to a
     * complete NAME) are deleted. Runs before a training run writes into a folder.
     *
     * @return the names restored
     */
    public static List<String> recover(Path parent) {
        List<String> restored = new java.util.ArrayList<>();
        if (!Files.isDirectory(parent)) {
            return restored;
        }
        List<Path> leftovers;
        try (var s = Files.list(parent)) {
            leftovers = s.filter(p -> p.getFileName().toString().matches("\\..+\\.(tmp|old)-[0-9a-f]+")).sorted().toList();
        } catch (IOException e) {
            return restored;
        }
        for (Path p : leftovers) {
            String name = p.getFileName().toString();
            String target = name.substring(1, name.lastIndexOf('.'));
            boolean old = name.substring(name.lastIndexOf('.')).startsWith(".old-");
            Path dest = parent.resolve(target);
            if (old && !Files.exists(dest, LinkOption.NOFOLLOW_LINKS)) {
                try {
                    Files.move(p, dest, StandardCopyOption.ATOMIC_MOVE);
                    restored.add(target);
                    continue;
                } catch (IOException e) {
                    continue; // leave it where it is: it may be the only copy
                }
            }
            FsUtil.deleteQuietly(p);
        }
        return restored;
    }

    /**
     * Puts {@code dir} back if a save killed between its two renames left it moved aside
     * (".NAME.old-*") and nothing took its place. The targeted form of {@link #recover(Path)}, for
     * a checkpoint named on the command line: the rest of its folder is left alone, because another
     * run may be saving there right now.
     *
     * @return whether {@code dir} was restored
     */
    public static boolean recoverMovedAside(Path dir) {
        Path target = dir.toAbsolutePath().normalize();
        Path parent = target.getParent();
        if (parent == null || Files.exists(target, LinkOption.NOFOLLOW_LINKS) || !Files.isDirectory(parent)) {
            return false;
        }
        String pattern = java.util.regex.Pattern.quote("." + target.getFileName()) + "\\.old-[0-9a-f]+";
        try (var s = Files.list(parent)) {
            Path aside = s.filter(p -> p.getFileName().toString().matches(pattern)).sorted().findFirst().orElse(null);
            if (aside == null) {
                return false;
            }
            Files.move(aside, target, StandardCopyOption.ATOMIC_MOVE);
            return true;
        } catch (IOException e) {
            return false; // the caller reports the missing folder; the copy stays where it is
        }
    }

    /** Puts the previous checkpoint back if it had already been moved aside when the swap failed. */
    private static void restore(Path old, Path target) {
        if (old == null) {
            return;
        }
        try {
            Files.move(old, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException ignored) {
            // Both renames are within one directory, so this is not expected to fail; if it does,
            // the previous checkpoint is still intact under the hidden ".old-" name.
        }
    }

    // Checked up front so that a typo in a tokenizer path is reported against that path, before
    // any gigabytes are written.
    private static void checkExtraFiles(List<Path> extraFiles) {
        Set<String> names = new HashSet<>(Set.of(HfCheckpoint.CONFIG_FILE, HfCheckpoint.SINGLE_FILE, HfCheckpoint.INDEX_FILE));
        for (Path p : extraFiles) {
            if (!Files.isRegularFile(p)) {
                throw new CheckpointException(p, "extra file to copy into the checkpoint not found");
            }
            String name = p.getFileName().toString();
            if (name.matches("model-\\d{5}-of-\\d{5}\\.safetensors") || !names.add(name)) {
                throw new IllegalArgumentException("extra file '" + p + "' clashes with another checkpoint file named " + name);
            }
        }
    }

    private static void writeContents(Path tmp, ObjectNode config, List<Entry> tensors, long shardBytes,
                                      List<Path> extraFiles) throws IOException {
        FsUtil.writeSynced(tmp.resolve(HfCheckpoint.CONFIG_FILE), Json.pretty(config));
        List<List<Entry>> shards = split(tensors, shardBytes);
        if (shards.size() == 1) {
            SafetensorsWriter.writeNew(tmp.resolve(HfCheckpoint.SINGLE_FILE), shards.getFirst(), SHARD_METADATA);
        } else {
            writeSharded(tmp, shards);
        }
        for (Path p : extraFiles) {
            Path copy = tmp.resolve(p.getFileName().toString());
            Files.copy(p, copy);
            FsUtil.fsync(copy);
        }
    }

    private static void writeSharded(Path tmp, List<List<Entry>> shards) throws IOException {
        // transformers writes the index with json.dumps(indent=2, sort_keys=True).
        Map<String, String> weightMap = new TreeMap<>();
        long totalSize = 0;
        for (int i = 0; i < shards.size(); i++) {
            String shardName = String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", i + 1, shards.size());
            SafetensorsWriter.writeNew(tmp.resolve(shardName), shards.get(i), SHARD_METADATA);
            for (Entry e : shards.get(i)) {
                weightMap.put(e.name(), shardName);
                totalSize += e.byteSize();
            }
        }
        ObjectNode index = Json.MAPPER.createObjectNode();
        index.putObject("metadata").put("total_size", totalSize);
        ObjectNode map = index.putObject("weight_map");
        weightMap.forEach(map::put);
        FsUtil.writeSynced(tmp.resolve(HfCheckpoint.INDEX_FILE), Json.pretty(index));
    }

    /**
     * Greedy split identical to huggingface_hub's {@code split_state_dict_into_shards}: fill a
     * shard until the next tensor would overflow it; a tensor bigger than the limit goes alone
     * into its own shard, placed before the shard being filled. Always at least one shard.
     */
    static List<List<Entry>> split(List<Entry> tensors, long shardBytes) {
        List<List<Entry>> shards = new ArrayList<>();
        List<Entry> current = new ArrayList<>();
        long currentBytes = 0;
        for (Entry e : tensors) {
            long size = e.byteSize();
            if (size > shardBytes) {
                shards.add(List.of(e));
                continue;
            }
            if (currentBytes + size > shardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(e);
            currentBytes += size;
        }
        if (!current.isEmpty() || shards.isEmpty()) {
            shards.add(current);
        }
        return shards;
    }
}
