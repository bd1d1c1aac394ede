package dev.collie.runtime.checkpoint;

import dev.collie.runtime.cli.CollieMain;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * `collie run` in a child JVM that stops at one chosen moment of one save and waits there, so that
 * a test can SIGKILL it at exactly that moment: a timer cannot hit a window a few microseconds wide,
 * such as the one between a save's two renames.
 *
 * <p>Arguments: {@code POINT SAVE INDEX} then the arguments of {@code collie}. The child pauses the
 * INDEXth time POINT is reached during its SAVEth save (both 1-based), after printing a line that
 * starts with {@link #PAUSED}. Everything else is the real command, unchanged.
 */
public final class PausingMain {

    /** The moments of a save a child can pause at, in the order a save reaches them. */
    public enum Point {
        /** the trainer's optimizer state half written, in the staging folder, trainer_state.json already there */
        OPTIMIZER_TENSOR,
        /** the optimizer state complete and synced, not yet renamed into place */
        OPTIMIZER_BEFORE_RENAME,
        /** the checkpoint's temporary folder with model.safetensors half written */
        MODEL_TENSOR,
        /** the temporary folder complete and synced, nothing renamed yet */
        BEFORE_SWAP,
        /** the previous checkpoint of the same name moved aside, the new one not yet renamed in */
        BETWEEN_RENAMES,
        /** the new checkpoint in place, the previous one not yet deleted */
        AFTER_SWAP
    }

    public static final String PAUSED = "paused at ";

    // Saves run one after another on one thread, so plain counters do.
    private static int savesDone;
    private static int reached;

    private PausingMain() {}

    public static void main(String[] args) {
        Point point = Point.valueOf(args[0]);
        int save = Integer.parseInt(args[1]);
        int index = Integer.parseInt(args[2]);
        IoHook at = p -> {
            if (savesDone + 1 == save && ++reached == index) {
                pause(point + " " + index + " of save " + save + ": " + p);
            }
        };
        switch (point) {
            case OPTIMIZER_TENSOR -> SafetensorsWriter.afterTensor = p -> {
                if (isOptimizerState(p)) {
                    at.run(p);
                }
            };
            case MODEL_TENSOR -> SafetensorsWriter.afterTensor = p -> {
                if (!isOptimizerState(p)) {
                    at.run(p);
                }
            };
            case OPTIMIZER_BEFORE_RENAME -> SafetensorsWriter.beforeRename = at;
            case BEFORE_SWAP -> HfCheckpointWriter.beforeSwap = at;
            case BETWEEN_RENAMES -> HfCheckpointWriter.betweenRenames = at;
            case AFTER_SWAP -> { } // below: it also counts the saves
        }
        HfCheckpointWriter.afterSwap = p -> {
            if (point == Point.AFTER_SWAP) {
                at.run(p);
            }
            savesDone++;
            reached = 0;
        };
        CollieMain.main(Arrays.copyOfRange(args, 3, args.length));
    }

    private static boolean isOptimizerState(Path file) {
        return file.getFileName().toString().contains("optimizer");
    }

    private static void pause(String where) {
        System.out.println(PAUSED + where);
        System.out.flush();
        while (true) {
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException ignored) {
                // only SIGKILL ends this
            }
        }
    }
}
