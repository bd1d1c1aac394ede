package dev.collie.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.collie.runtime.report.LossPlot;
import dev.collie.runtime.report.MetricsWriter;
import dev.collie.runtime.report.OutputError;
import dev.collie.runtime.report.StepMetrics;
import dev.collie.runtime.train.TrainSettings;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A disk that really fills up: a small tmpfs, filled with zeros behind the writer's back. Unlike
 * DiskFullDuringTrainingTest, which injects the error at one chosen place, the writer meets
 * whichever write the kernel refuses first. `collie run` in a child JVM must stop with one line
 * naming what it could not write, leave its last checkpoint as it was, and continue from it with
 * --resume once there is space again; the run's other files (metrics, settings, plot) must name
 * themselves too, since the error a failed write throws names no file.
 */
class DiskFullOnTmpfsTest {

    // A checkpoint of the tiny model takes about 0.5 MiB. Room for the three a resumed run ends
    // with (step 1, step 2, final) plus one being written, and nothing like a real disk.
    static final long SIZE = 4L << 20;

    @Test
    void aFullDiskStopsTheRunWithOneLineAndItsLastCheckpointResumes(@TempDir Path tmp) throws Exception {
        Path data = CollieChild.writeData(tmp);
        Path disk = mount(tmp);
        Process run = null;
        try {
            Path first = disk.resolve("checkpoints").resolve("step-00000001");

            run = CollieChild.start(data, disk, 100_000, "--save-every", "1");
            String log = CollieChild.awaitLine(run, disk, "saved " + first);
            assertTrue(log.contains("saved " + first), CollieChild.both(disk));
            byte[] weights = Files.readAllBytes(first.resolve("model.safetensors"));
            fill(disk);
            assertTrue(run.waitFor(60, TimeUnit.SECONDS), "still running on a full disk");

            String out = Files.readString(CollieChild.log(disk));
            List<String> err = Files.readAllLines(CollieChild.errors(disk)).stream()
                    .filter(l -> !l.startsWith("WARNING: Using incubator modules")).toList();
            String both = out + String.join("\n", err);
            assertEquals(1, run.exitValue(), both);
            assertEquals(1, err.size(), both);
            String error = err.getFirst();
            System.out.println("DiskFullOnTmpfsTest: the run said: " + error);
            assertTrue(error.startsWith(disk + "/") && error.contains(": error: ")
                    && error.endsWith("No space left on device"), error);
            assertFalse(both.contains("\tat ") || both.contains("Exception") || both.contains("internal error"), both);

            // The checkpoint saved before the disk filled up is as it was, and nothing half written is left.
            assertEquals(List.of(first), CollieChild.checkpoints(disk));
            assertArrayEquals(weights, Files.readAllBytes(first.resolve("model.safetensors")));
            CollieChild.assertLoadable(first);
            assertEquals(List.of(), CollieChild.hidden(disk));
            assertEquals(List.of(), CollieChild.hidden(disk.resolve("checkpoints")));

            // Space again: --resume continues from it, into the same folder, to the end.
            Files.delete(disk.resolve("filler"));
            run = CollieChild.start(data, disk, 3, "--save-every", "1", "--resume", first.toString());
            assertTrue(run.waitFor(120, TimeUnit.SECONDS));
            assertEquals(0, run.exitValue(), CollieChild.both(disk));
            assertTrue(CollieChild.both(disk).contains("step 2/"), CollieChild.both(disk));
            assertEquals(3, CollieChild.assertLoadable(disk.resolve("final")).step());
        } finally {
            if (run != null) {
                run.destroyForcibly().waitFor(60, TimeUnit.SECONDS); // a live process keeps the tmpfs busy
            }
            unmount(disk);
        }
    }

    @Test
    void theRunsOtherFilesNameThemselvesWhenTheDiskIsFull(@TempDir Path tmp) throws Exception {
        Path disk = mount(tmp);
        try {
            MetricsWriter metrics = MetricsWriter.open(disk, List.of(), 0);
            fill(disk);
            // The first records may still fit in the last page of the file.
            OutputError full = assertThrows(OutputError.class, () -> {
                for (int step = 1; step < 100_000; step++) {
                    metrics.write(new StepMetrics(step, 100_000, 1, 0.01, 1, 16, 0.1, 160, 160, 0, StepMetrics.TRAIN,
                            Map.of()));
                }
            });
            assertTrue(full.getMessage().matches(Pattern.quote(disk + "/metrics.") + "(jsonl|csv): error: cannot write: "
                    + "No space left on device"), full.getMessage());

            TrainSettings settings = TrainSettings.resolve(Map.of(), null, Map.of("data", "train.jsonl"));
            full = assertThrows(OutputError.class, () -> settings.write(disk.resolve("settings.json")));
            assertEquals(disk + "/settings.json: error: cannot write: No space left on device", full.getMessage());

            full = assertThrows(OutputError.class, () -> LossPlot.write(disk.resolve("loss.png"), List.of()));
            assertEquals(disk + "/loss.png: error: cannot write: No space left on device", full.getMessage());

            Files.delete(disk.resolve("filler"));
            metrics.close();
            assertEquals(List.of(), CollieChild.hidden(disk), "temporary files left behind");
        } finally {
            unmount(disk);
        }
    }

    /**
     * A fresh tmpfs of {@link #SIZE} bytes on {@code tmp}/disk. Only a missing privilege may skip
     * the test: as root, a mount that fails is a failure.
     */
    private static Path mount(Path tmp) throws Exception {
        long uid = uid();
        if (uid != 0) {
            System.out.println("DiskFullOnTmpfsTest skipped: mounting a tmpfs needs root, this runs as uid " + uid);
        }
        assumeTrue(uid == 0, "mounting a tmpfs needs root, this runs as uid " + uid);
        Path disk = Files.createDirectory(tmp.resolve("disk"));
        String output = exec("mount", "-t", "tmpfs", "-o", "size=" + SIZE, "tmpfs", disk.toString());
        if (output != null) {
            fail("running as root, but cannot mount a tmpfs on " + disk + " (a container needs CAP_SYS_ADMIN): "
                    + output);
        }
        FileStore store = Files.getFileStore(disk);
        // The tests fill this disk up: make sure it is the small tmpfs and not the one below it.
        if (!store.type().equals("tmpfs") || store.getTotalSpace() > SIZE) {
            unmount(disk);
            fail(disk + " is not the tmpfs just mounted: " + store.type() + ", " + store.getTotalSpace() + " bytes");
        }
        return disk;
    }

    /** Writes zeros to {@code disk}/filler until the disk is full, never more than it holds. */
    private static void fill(Path disk) throws IOException {
        Path filler = disk.resolve("filler");
        long limit = Files.getFileStore(disk).getTotalSpace();
        byte[] chunk = new byte[64 << 10];
        long written = 0;
        try (OutputStream os = Files.newOutputStream(filler)) {
            while (written < limit) {
                os.write(chunk);
                os.flush();
                written += chunk.length;
            }
        } catch (IOException e) {
            if (String.valueOf(e.getMessage()).contains("No space left on device")) {
                return;
            }
            throw e;
        }
        fail("wrote " + written + " bytes to " + filler + " without filling the disk");
    }

    private static long uid() {
        try {
            return new com.sun.security.auth.module.UnixSystem().getUid();
        } catch (LinkageError notUnix) {
            return -1;
        }
    }

    private static void unmount(Path dir) throws Exception {
        if (Files.isDirectory(dir) && exec("umount", dir.toString()) != null) {
            exec("umount", "-l", dir.toString()); // detach it now, the kernel frees it once idle
        }
    }

    /** Runs a command; null if it succeeds, else what it printed. */
    private static String exec(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes());
        return p.waitFor() == 0 ? null : "exit " + p.exitValue() + ": " + output.strip();
    }
}
