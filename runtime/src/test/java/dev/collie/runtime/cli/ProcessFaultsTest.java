package dev.collie.runtime.cli;

import static dev.collie.runtime.checkpoint.PausingMain.Point.AFTER_SWAP;
import static dev.collie.runtime.checkpoint.PausingMain.Point.BEFORE_SWAP;
import static dev.collie.runtime.checkpoint.PausingMain.Point.BETWEEN_RENAMES;
import static dev.collie.runtime.checkpoint.PausingMain.Point.MODEL_TENSOR;
import static dev.collie.runtime.checkpoint.PausingMain.Point.OPTIMIZER_BEFORE_RENAME;
import static dev.collie.runtime.checkpoint.PausingMain.Point.OPTIMIZER_TENSOR;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.checkpoint.PausingMain;
import dev.collie.runtime.checkpoint.PausingMain.Point;
import dev.collie.runtime.train.TrainerState;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real processes, real signals: `collie run` in a child JVM, stopped with SIGTERM (it must save and
 * exit cleanly) and killed with SIGKILL at many exact moments of its saves (every checkpoint left
 * behind must load or be put back by the next run, and --resume must continue from the newest).
 */
class ProcessFaultsTest {

    /** Where the kills land is drawn from this; the test prints it. Try others with -Dcollie.killSeed=N. */
    static final long SEED = Long.getLong("collie.killSeed", 5);

    // What the tiny llama writes per save; a kill inside a file picks one of its tensors.
    static final int MODEL_TENSORS = 21;
    static final int OPTIMIZER_TENSORS = 37;

    static final Pattern STEP_LINE = Pattern.compile("(?m)^step (\\d+)/");
    static final Pattern MOVED_ASIDE = Pattern.compile("\\.step-(\\d+)\\.old-[0-9a-f]+");

    static Path data;

    @BeforeAll
    static void writeData(@TempDir Path dir) throws IOException {
        data = CollieChild.writeData(dir);
    }

    @Test
    void sigtermSavesACheckpointAndExitsCleanly(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("run");
        Process p = CollieChild.start(data, out, 100_000);
        String before = CollieChild.awaitLine(p, out, "step 3/");
        assertTrue(before.contains("step 3/"), CollieChild.both(out));
        p.toHandle().destroy(); // SIGTERM
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String rest = CollieChild.both(out);
        assertEquals(130, p.exitValue(), rest);
        assertTrue(rest.contains("interrupted after step") && rest.contains("--resume"), rest);
        List<Path> saved = CollieChild.checkpoints(out);
        assertEquals(1, saved.size(), saved.toString());
        CollieChild.assertLoadable(saved.getFirst());
    }

    /** One SIGKILL: at which moment of which save, and whether that run started over instead of resuming. */
    record Kill(Point point, int save, int index, boolean rerun) {
        @Override
        public String toString() {
            return (rerun ? "rerun, " : "") + "save " + save + " " + point + (index > 1 ? " " + index : "");
        }
    }

    /**
     * Covers every moment of a save, in first saves and in later ones, and the saves that replace
     * a checkpoint of the same name, in an order drawn from {@code rnd}.
     */
    static List<Kill> schedule(Random rnd) {
        List<Kill> kills = new ArrayList<>();
        // The first save of a fresh output folder, with no previous checkpoint: a kill before the
        // rename leaves none, so the next run's save is a first save again; the last one leaves step 1.
        List<Point> first = new ArrayList<>(List.of(OPTIMIZER_TENSOR, MODEL_TENSOR, BEFORE_SWAP));
        Collections.shuffle(first, rnd);
        first.add(AFTER_SWAP);
        for (Point p : first) {
            kills.add(new Kill(p, 1, index(p, rnd), false));
        }
        // Later saves of runs resumed from the newest checkpoint, and of runs started over in the
        // same folder (a user rerunning the command): only these replace an existing checkpoint,
        // which is what moves one aside and opens the window between two renames.
        List<Kill> later = new ArrayList<>();
        for (Point p : List.of(OPTIMIZER_TENSOR, OPTIMIZER_BEFORE_RENAME, MODEL_TENSOR, BEFORE_SWAP, AFTER_SWAP)) {
            later.add(new Kill(p, 1 + rnd.nextInt(3), index(p, rnd), false));
        }
        for (Point p : List.of(BETWEEN_RENAMES, BETWEEN_RENAMES, BETWEEN_RENAMES, AFTER_SWAP)) {
            later.add(new Kill(p, 1 + rnd.nextInt(3), index(p, rnd), true));
        }
        Collections.shuffle(later, rnd);
        kills.addAll(later);
        return kills;
    }

    private static int index(Point p, Random rnd) {
        return switch (p) {
            case MODEL_TENSOR -> 1 + rnd.nextInt(MODEL_TENSORS);
            case OPTIMIZER_TENSOR -> 1 + rnd.nextInt(OPTIMIZER_TENSORS);
            default -> 1;
        };
    }

    @Test
    void sigkillAtEveryMomentOfASaveLosesNoCheckpoint(@TempDir Path tmp) throws Exception {
        List<Kill> kills = schedule(new Random(SEED));
        System.out.println("ProcessFaultsTest: kill seed " + SEED + ", " + kills.size() + " kills: " + kills);
        assertTrue(kills.size() >= 12);
        Path out = tmp.resolve("run");
        Path saves = out.resolve("checkpoints");
        Map<String, Long> loaded = new HashMap<>();
        TreeSet<Long> present = new TreeSet<>();
        List<Path> leftovers = List.of();
        boolean movedAside = false;
        for (int k = 0; k < kills.size(); k++) {
            Kill kill = kills.get(k);
            long latest = present.isEmpty() ? 0 : present.last();
            // A run started over replaces the checkpoints it saves again, so it only pauses in those.
            int save = kill.rerun() ? (int) Math.min(kill.save(), latest) : kill.save();
            String where = "kill " + (k + 1) + " of " + kills.size() + " (" + kill
                    + (save != kill.save() ? ", in save " + save : "") + "; seed " + SEED + ")";
            assertTrue(!kill.rerun() || latest > 0, where);
            boolean resume = latest > 0 && !kill.rerun();
            long firstStep = resume ? latest + 1 : 1;
            List<String> extra = new ArrayList<>(List.of("--save-every", "1"));
            if (resume) {
                extra.addAll(List.of("--resume", step(saves, latest).toString()));
            }
            Process p = CollieChild.start(PausingMain.class.getName(),
                    List.of(kill.point().name(), Integer.toString(save), Integer.toString(kill.index())), data, out,
                    firstStep + 3, extra.toArray(String[]::new));
            String log = CollieChild.awaitLine(p, out, PausingMain.PAUSED);
            CollieChild.kill(p);
            assertTrue(log.contains(PausingMain.PAUSED), where + ": the child never got there:\n" + CollieChild.both(out));

            // It continued from the newest checkpoint (or started over, as asked)...
            assertEquals(firstStep, firstStep(log), where + "\n" + log);
            // ...after putting back what the previous kill had moved aside and deleting its leftovers.
            assertEquals(movedAside, log.contains("recovered "), where + "\n" + log);
            for (Path l : leftovers) {
                assertFalse(Files.exists(l), where + ": the previous kill's " + l + " is still there");
            }

            // Every checkpoint left behind loads, including one moved aside (the next run puts it
            // back), and none saved before is missing.
            TreeSet<Long> now = new TreeSet<>();
            for (Path c : CollieChild.checkpoints(out)) {
                now.add(load(c, loaded, where));
            }
            movedAside = false;
            for (Path h : CollieChild.hidden(saves)) {
                Matcher m = MOVED_ASIDE.matcher(h.getFileName().toString());
                if (m.matches() && !Files.exists(step(saves, Long.parseLong(m.group(1))))) {
                    now.add(load(h, loaded, where));
                    movedAside = true;
                }
            }
            // Exactly the saves completed before the kill are there: none lost, none half written.
            TreeSet<Long> expected = new TreeSet<>(present);
            for (long done = firstStep; done < firstStep + save - 1; done++) {
                expected.add(done);
            }
            if (kill.point() == AFTER_SWAP) {
                expected.add(firstStep + save - 1);
            }
            assertEquals(expected, now, where);
            present = now;
            leftovers = new ArrayList<>(CollieChild.hidden(out));
            leftovers.addAll(CollieChild.hidden(saves));
        }

        // Space to finish: --resume from the newest checkpoint runs to the end and cleans up.
        long latest = present.last();
        Process last = CollieChild.start(data, out, latest + 1, "--resume", step(saves, latest).toString());
        assertTrue(last.waitFor(120, TimeUnit.SECONDS));
        String log = CollieChild.both(out);
        assertEquals(0, last.exitValue(), log);
        assertEquals(latest + 1, firstStep(log), log);
        assertEquals(latest + 1, CollieChild.assertLoadable(out.resolve("final")).step());
        assertEquals(List.of(), CollieChild.hidden(out));
        assertEquals(List.of(), CollieChild.hidden(saves));
    }

    private static Path step(Path saves, long step) {
        return saves.resolve(String.format("step-%08d", step));
    }

    private static long firstStep(String log) {
        Matcher m = STEP_LINE.matcher(log);
        return m.find() ? Long.parseLong(m.group(1)) : -1;
    }

    /** Loads a checkpoint unless the same folder was loaded before (a save replaces a folder whole); returns its step. */
    private static long load(Path checkpoint, Map<String, Long> loaded, String where) throws IOException {
        BasicFileAttributes weights = Files.readAttributes(checkpoint.resolve("model.safetensors"), BasicFileAttributes.class);
        // The file, wherever its folder is now: one moved aside and back needs no second look.
        String identity = weights.fileKey() + " " + weights.lastModifiedTime() + " " + weights.size();
        Long step = loaded.get(identity);
        if (step == null) {
            try {
                step = CollieChild.assertLoadable(checkpoint).step();
            } catch (RuntimeException | AssertionError e) {
                throw new AssertionError(where + ": " + checkpoint + " does not load", e);
            }
            loaded.put(identity, step);
        }
        return step;
    }
}
