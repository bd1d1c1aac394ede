package dev.collie.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.exec.Session;
import dev.collie.runtime.train.TrainerState;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real processes, real signals: `collie run` in a child JVM, stopped with SIGTERM (it must save and
 * exit cleanly) and killed with SIGKILL at many moments, saves included (every checkpoint left
 * behind must load, and --resume must continue from the newest).
 */
class ProcessFaultsTest {

    static Path data;

    @BeforeAll
    static void writeData(@TempDir Path dir) throws IOException {
        data = dir.resolve("train.jsonl");
        StringBuilder rows = new StringBuilder();
        for (int i = 0; i < 64; i++) {
            String d = String.format("%03d", (i * 53) % 1000);
            rows.append("{\"prompt\": \"reverse ").append(d).append(" =\", \"response\": \" ")
                    .append(new StringBuilder(d).reverse()).append("\"}\n");
        }
        Files.writeString(data, rows);
    }

    static Process start(Path out, String... extra) throws IOException {
        return startFor(out, "100000", extra);
    }

    /** Starts `collie run` in a child JVM; its output goes to out.log (streams die with a killed process). */
    static Process startFor(Path out, String steps, String... extra) throws IOException {
        Files.createDirectories(out);
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), CollieMain.class.getName(), "run", "../models/llama.collie",
                "--preset", "tiny", "--set", "vocab=259", "--tokenizer", "byte", "--data", data.toString(),
                "--steps", steps, "--batch-size", "8", "--optimizer", "adalomo", "--lr", "0.01", "--quiet",
                "--output", out.toString()));
        cmd.addAll(List.of(extra));
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log(out).toFile()).start();
    }

    static Path log(Path out) {
        return out.resolveSibling(out.getFileName() + ".log");
    }

    /** Waits until the child's log contains {@code marker} (or it exits); returns the log. */
    static String awaitLine(Process p, Path out, String marker) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (System.nanoTime() < deadline) {
            String text = Files.exists(log(out)) ? Files.readString(log(out)) : "";
            if (text.contains(marker) || !p.isAlive()) {
                return text;
            }
            Thread.sleep(20);
        }
        return Files.readString(log(out));
    }

    static List<Path> checkpoints(Path out) throws IOException {
        Path dir = out.resolve("checkpoints");
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> !p.getFileName().toString().startsWith(".")).sorted().toList();
        }
    }

    static void assertLoadable(Path checkpoint) {
        TrainerState state = TrainerState.read(checkpoint);
        assertTrue(state.step() > 0);
        try (Session s = Session.open(Session.ModelSpec.of(Path.of("../models/llama.collie"), null, Map.of()),
                checkpoint, 0)) {
            assertEquals(259, s.vocabSize());
        }
    }

    @Test
    void sigtermSavesACheckpointAndExitsCleanly(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("run");
        Process p = start(out);
        String before = awaitLine(p, out, "step 3/");
        assertTrue(before.contains("step 3/"), before);
        p.toHandle().destroy(); // SIGTERM
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String rest = Files.readString(log(out));
        assertEquals(130, p.exitValue(), rest);
        assertTrue(rest.contains("interrupted after step") && rest.contains("--resume"), rest);
        List<Path> saved = checkpoints(out);
        assertEquals(1, saved.size(), saved.toString());
        assertLoadable(saved.getFirst());
    }

    @Test
    void sigkillAtRandomMomentsNeverLeavesABrokenCheckpoint(@TempDir Path tmp) throws Exception {
        Random rnd = new Random(42);
        int kills = 0;
        Path out = tmp.resolve("run");
        for (int round = 0; round < 4; round++) {
            Process p = start(out, "--save-every", "1");
            awaitLine(p, out, "step 2/");
            // Saves happen after every step now; kill at a random point in the next few of them.
            Thread.sleep(rnd.nextInt(400));
            p.toHandle().destroyForcibly(); // SIGKILL
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            kills++;
            for (Path c : checkpoints(out)) {
                assertLoadable(c);
            }
        }
        assertEquals(4, kills);
        List<Path> saved = checkpoints(out);
        assertTrue(!saved.isEmpty());
        // --resume continues from the newest checkpoint that survived.
        Path newest = saved.getLast();
        Path again = tmp.resolve("resumed");
        Process resumed = startFor(again, Long.toString(TrainerState.read(newest).step() + 1), "--resume", newest.toString());
        assertTrue(resumed.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, resumed.exitValue(), Files.readString(log(again)));
    }
}
