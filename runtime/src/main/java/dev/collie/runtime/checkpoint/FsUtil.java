package dev.collie.runtime.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.concurrent.ThreadLocalRandom;

/** File-system steps shared by the writers' publish-by-rename protocol. */
final class FsUtil {

    private FsUtil() {}

    /**
     * A hidden sibling of {@code target} such as {@code .model.safetensors.tmp-1a2b}: same
     * directory (so the final rename stays on one file system and is atomic), dot-prefixed so
     * tools listing checkpoints ignore it, random so concurrent writers never collide.
     */
    static Path sibling(Path target, String kind) {
        Path abs = target.toAbsolutePath();
        String suffix = Long.toHexString(ThreadLocalRandom.current().nextLong());
        return abs.resolveSibling("." + abs.getFileName() + "." + kind + "-" + suffix);
    }

    /** Writes a new file and forces it to disk. */
    static void writeSynced(Path file, byte[] bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            writeAll(ch, ByteBuffer.wrap(bytes));
            ch.force(true);
        }
    }

    static void writeAll(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    static void fsync(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
    }

    /**
     * Makes a rename inside {@code dir} durable. Best effort: some platforms and file systems
     * refuse to open a directory for syncing, and the data itself is already on disk.
     */
    static void syncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // Nothing more can be done portably; see above.
        }
    }

    /**
     * Removes a temporary or superseded file or tree, if present. Used on cleanup paths where the
     * caller is already reporting the failure that matters (or has already succeeded), so a
     * leftover hidden entry is preferable to masking that outcome.
     */
    static void deleteQuietly(Path path) {
        try {
            if (Files.isDirectory(path, LinkOption.NOFOLLOW_LINKS)) {
                Files.walkFileTree(path, new SimpleFileVisitor<>() {
                    @Override
                    public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
                        Files.delete(f);
                        return FileVisitResult.CONTINUE;
                    }

                    @Override
                    public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                        if (e != null) {
                            throw e;
                        }
                        Files.delete(d);
                        return FileVisitResult.CONTINUE;
                    }
                });
            } else {
                Files.deleteIfExists(path);
            }
        } catch (IOException ignored) {
            // See the method comment.
        }
    }
}
