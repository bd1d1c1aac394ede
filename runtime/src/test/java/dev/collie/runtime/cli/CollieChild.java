package dev.collie.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.checkpoint.SafetensorsFile;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.train.TrainerState;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * `collie run` in a child JVM, for the tests that need a real process (signals, SIGKILL, a full
 * disk), and the checks of what it leaves behind. Output goes to files next to the output folder,
 * because a killed process takes its pipes with it, and a full disk must not swallow the log.
 */
final class CollieChild {

    static final Path MODEL = Path.of("../models/llama.collie");

    private CollieChild() {}

    /** 64 prompt/response rows the tiny model can learn from. */
    static Path writeData(Path dir) throws IOException {
        Path data = dir.resolve("train.jsonl");
        StringBuilder rows = new StringBuilder();
        for (int i = 0; i < 64; i++) {
            String d = String.format("%03d", (i * 53) % 1000);
            rows.append("{\"prompt\": \"reverse ").append(d).append(" =\", \"response\": \" ")
                    .append(new StringBuilder(d).reverse()).append("\"}\n");
        }
        Files.writeString(data, rows);
        return data;
    }

    /**
     * Starts {@code main} (CollieMain, or a wrapper that passes its remaining arguments on to it)
     * with {@code mainArgs}, then `run` of the tiny llama on {@code data} into {@code out}.
     */
    static Process start(String main, List<String> mainArgs, Path data, Path out, long steps, String... extra)
            throws IOException {
        Files.createDirectories(out.toAbsolutePath().getParent());
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                // These children live for seconds, most of it before the first save: C1 alone gets
                // there sooner than tiered compilation, and nothing tested depends on C2.
                "-XX:TieredStopAtLevel=1",
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), main));
        cmd.addAll(mainArgs);
        cmd.addAll(List.of("run", MODEL.toString(), "--preset", "tiny", "--set", "vocab=259", "--tokenizer", "byte",
                "--data", data.toString(), "--steps", Long.toString(steps), "--batch-size", "2", "--optimizer",
                "adalomo", "--lr", "0.01", "--quiet", "--output", out.toString()));
        cmd.addAll(List.of(extra));
        return new ProcessBuilder(cmd).redirectOutput(log(out).toFile()).redirectError(errors(out).toFile()).start();
    }

    static Process start(Path data, Path out, long steps, String... extra) throws IOException {
        return start(CollieMain.class.getName(), List.of(), data, out, steps, extra);
    }

    /** The child's standard output. */
    static Path log(Path out) {
        return out.resolveSibling(out.getFileName() + ".log");
    }

    /** The child's standard error. */
    static Path errors(Path out) {
        return out.resolveSibling(out.getFileName() + ".err");
    }

    /** Standard output and standard error, for assertion messages. */
    static String both(Path out) throws IOException {
        return read(log(out)) + read(errors(out));
    }

    private static String read(Path file) throws IOException {
        return Files.exists(file) ? Files.readString(file) : "";
    }

    /** Waits until the child's standard output contains {@code marker} or it exits; returns what it printed. */
    static String awaitLine(Process p, Path out, String marker) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (System.nanoTime() < deadline) {
            String text = read(log(out));
            if (text.contains(marker) || !p.isAlive()) {
                return read(log(out));
            }
            Thread.sleep(10);
        }
        return read(log(out));
    }

    static void kill(Process p) throws InterruptedException {
        p.toHandle().destroyForcibly(); // SIGKILL
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the child survived SIGKILL");
    }

    /** The checkpoints a user sees in {@code out}/checkpoints (hidden leftovers of interrupted saves excluded). */
    static List<Path> checkpoints(Path out) throws IOException {
        return list(out.resolve("checkpoints"), false);
    }

    /** Hidden entries of {@code dir}: the leftovers of interrupted saves. */
    static List<Path> hidden(Path dir) throws IOException {
        return list(dir, true);
    }

    private static List<Path> list(Path dir, boolean hidden) throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().startsWith(".") == hidden).sorted().toList();
        }
    }

    /** The checkpoint can be resumed from: its trainer state and optimizer state read, and the model loads from it. */
    static TrainerState assertLoadable(Path checkpoint) {
        TrainerState state = TrainerState.read(checkpoint);
        assertTrue(state.step() > 0, checkpoint + ": step " + state.step());
        try (SafetensorsFile optimizer = SafetensorsFile.open(checkpoint.resolve(TrainerState.OPTIMIZER_FILE))) {
            assertTrue(!optimizer.tensors().isEmpty(), checkpoint + ": empty optimizer state");
        }
        try (Session s = Session.open(Session.ModelSpec.of(MODEL, null, Map.of()), checkpoint, 0)) {
            assertEquals(259, s.vocabSize());
        }
        return state;
    }
}
