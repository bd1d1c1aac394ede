package dev.collie.runtime.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.collie.runtime.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What a checkpoint needs beyond the weights to continue a run exactly: the step, the data cursor,
 * the optimizer's step count, and the facts that must not change between the two halves of a run
 * (seed, batch size, packing, the number of training rows). Saved as trainer_state.json.
 */
public record TrainerState(long step, int epoch, int index, String optimizer, long optimizerStep, long seed,
                           long batchSize, boolean pack, int rows, long totalSteps) {

    public static final String FILE = "trainer_state.json";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public void write(Path file) throws IOException {
        JSON.writeValue(file.toFile(), this);
    }

    public static TrainerState read(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            throw new CheckpointException(dir, "not a resumable checkpoint: no " + FILE + " (checkpoints saved by "
                    + "'collie run' during training have one)");
        }
        try {
            return JSON.readValue(file.toFile(), TrainerState.class);
        } catch (IOException e) {
            throw new CheckpointException(file, "unreadable trainer state: " + e.getMessage());
        }
    }

    /** A resumed run must see the same data in the same order: compare what decides it. */
    void checkCompatible(TrainerState now, Path dir) {
        String why = null;
        if (seed != now.seed) {
            why = "seed " + seed + " vs " + now.seed;
        } else if (batchSize != now.batchSize) {
            why = "batch_size " + batchSize + " vs " + now.batchSize;
        } else if (pack != now.pack) {
            why = "pack " + pack + " vs " + now.pack;
        } else if (rows != now.rows) {
            why = "the training data has " + now.rows + " rows, the run had " + rows;
        } else if (!optimizer.equals(now.optimizer)) {
            why = "optimizer " + optimizer + " vs " + now.optimizer;
        }
        if (why != null) {
            throw new CheckpointException(dir.resolve(FILE), "cannot resume: the run was started with other "
                    + "settings (" + why + ")");
        }
    }
}
