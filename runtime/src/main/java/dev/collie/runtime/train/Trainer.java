package dev.collie.runtime.train;

import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.MachineMemory;
import dev.collie.runtime.checkpoint.CheckpointException;
import dev.collie.runtime.checkpoint.SafetensorsFile;
import dev.collie.runtime.checkpoint.SafetensorsWriter;
import dev.collie.runtime.checkpoint.StDType;
import dev.collie.runtime.data.Batch;
import dev.collie.runtime.data.Batches;
import dev.collie.runtime.data.ChatTemplate;
import dev.collie.runtime.data.Example;
import dev.collie.runtime.data.FormatOptions;
import dev.collie.runtime.data.JsonlExamples;
import dev.collie.runtime.data.PackedRow;
import dev.collie.runtime.data.Packer;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.generate.Generator;
import dev.collie.runtime.generate.Sampling;
import dev.collie.runtime.optim.Optimizer;
import dev.collie.runtime.report.LossPlot;
import dev.collie.runtime.report.MetricsWriter;
import dev.collie.runtime.report.OutputError;
import dev.collie.runtime.report.StepMetrics;
import dev.collie.runtime.report.TrainingProgress;
import dev.collie.runtime.tensor.NativeMemory;
import dev.collie.runtime.tensor.Tensor;
import dev.collie.runtime.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The fine-tuning loop of `collie run`: data in, in-place updates, evaluation and generation every
 * so often, checkpoints that can be resumed, metrics, a loss plot and a progress bar.
 *
 * Output folder: settings.json (every resolved setting), metrics.jsonl / metrics.csv, loss.png,
 * checkpoints/step-NNNNNNNN/ (Hugging Face layout plus trainer_state.json and the optimizer state)
 * and final/.
 */
public final class Trainer {

    /** What a run did, for callers that report or test it. */
    public record Outcome(long firstStep, long lastStep, double firstLoss, double lastLoss, List<Double> losses,
                          Evaluator.Result before, Evaluator.Result after, Path output, Path finalCheckpoint) {}

    private final Session session;
    private final TrainSettings settings;
    private final Tokenizer tokenizer;
    private final Optimizer optimizer;
    private final Path output;
    private final Path resume;
    private final Path finalDir;
    private final PrintStream out;

    /**
     * @param session   the model, with parameters already loaded (from the resume checkpoint when resuming)
     * @param resume    a checkpoint folder written by a previous run, or null
     * @param finalDir  where the final checkpoint goes; null for output/final
     */
    public Trainer(Session session, TrainSettings settings, Tokenizer tokenizer, Optimizer optimizer, Path output,
                   Path resume, Path finalDir, PrintStream out) {
        this.session = session;
        this.settings = settings;
        this.tokenizer = tokenizer;
        this.optimizer = optimizer;
        this.output = output;
        this.resume = resume;
        this.finalDir = finalDir != null ? finalDir : output.resolve("final");
        this.out = out;
        session.executor().setOptimizer(optimizer);
    }

    public Outcome run() throws IOException {
        try {
            return train();
        } catch (FileSystemException e) {
            if (e.getFile() == null) {
                throw e;
            }
            // A full disk or a read-only folder is for the user to fix, not a bug: say which file.
            throw new OutputError(e);
        }
    }

    /**
     * Prints the training step's planned peak (weights, the program's arena and outputs at the largest
     * batch this data makes, and the runtime's floor) beside the memory this machine has available, and
     * stops before anything is trained if it does not fit: a run that swaps or is killed halfway is
     * worse than no run. {@code memory_check = false} lets a user run anyway.
     */
    private void checkMemory(ProgramKind kind, int batchSize, int longestRow) {
        Map<String, Long> bindings = Map.of("B", (long) batchSize, "T", (long) longestRow);
        long planned = session.executor().memoryPlan(kind, bindings).peakBytes(session.params().bytes());
        long available = MachineMemory.availableBytes();
        out.printf("memory: planned peak %s at batch %d x %d tokens; %s%n", gib(planned), batchSize, longestRow,
                available > 0 ? gib(available) + " available" : "available memory unknown");
        String error = memoryError(planned, available, settings.bool("memory_check"));
        if (error != null) {
            throw new dev.collie.compiler.cli.CliSupport.UsageError(error);
        }
    }

    /** The message that stops a run whose planned peak exceeds the available memory, or null to go on. */
    static String memoryError(long planned, long available, boolean check) {
        if (!check || available <= 0 || planned <= available) {
            return null;
        }
        return String.format("the training step needs %s (planned peak) but this machine has %s available; use "
                + "bf16 weights (--dtype bf16), --activation-checkpointing, a smaller --batch-size or --max-length, "
                + "or --memory-check=false to run anyway", gib(planned), gib(available));
    }

    private static String gib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
    }

    private Outcome train() throws IOException {
        long vocab = session.vocabSize();
        // A tokenizer larger than the model is fine for pre-tokenized data; the reader checks every id
        // it produces against the model's vocabulary and names the row of the first one outside it.
        int maxLength = (int) settings.integer("max_length");
        long modelContext = session.maxSequence();
        if (modelContext > 0 && maxLength > modelContext) {
            maxLength = (int) modelContext;
        }
        ChatTemplate template = settings.chat().isEmpty() ? ChatTemplate.defaults() : ChatTemplate.parse(settings.chat());
        FormatOptions format = new FormatOptions((int) vocab, maxLength, true);
        long seed = settings.integer("seed");
        String dataPath = settings.string("data");
        if (dataPath == null || dataPath.isEmpty()) {
            throw new dev.collie.compiler.cli.CliSupport.UsageError("--data is required (or 'data' in the train "
                    + "section or run config)");
        }
        JsonlExamples.Result loaded = JsonlExamples.load(Path.of(dataPath), tokenizer, template, format);
        List<Example> train = loaded.examples();
        List<Example> eval = List.of();
        if (!settings.string("eval_data").isEmpty()) {
            eval = JsonlExamples.read(Path.of(settings.string("eval_data")), tokenizer, template, format);
        } else if (settings.real("eval_fraction") > 0) {
            Batches.Split split = Batches.split(train, settings.real("eval_fraction"), seed);
            train = split.train();
            eval = split.eval();
        }
        boolean pack = settings.bool("pack");
        List<PackedRow> rows = pack ? Packer.pack(train, maxLength) : Packer.unpacked(train);
        Batches batches = new Batches(rows, seed, false, settings.bool("shuffle"));
        int batchSize = (int) settings.integer("batch_size");
        long steps = settings.integer("steps") > 0 ? settings.integer("steps")
                : settings.integer("epochs") * ((rows.size() + batchSize - 1) / batchSize);
        LrSchedule schedule = new LrSchedule(settings.string("schedule"), settings.real("lr"), settings.real("min_lr"),
                settings.integer("warmup_steps"), steps);
        Double clip = null;
        if (settings.real("clip_norm") > 0) {
            clip = settings.real("clip_norm");
        } else if (settings.bool("guard_nonfinite")) {
            clip = Double.POSITIVE_INFINITY;
        }
        checkMemory(clip == null ? ProgramKind.TRAIN : ProgramKind.TRAIN_CLIPPED, Math.max(1, Math.min(batchSize,
                rows.size())), rows.stream().mapToInt(PackedRow::length).max().orElse(1));
        long maxBad = settings.integer("max_bad_steps");
        long bad = 0;

        TrainerState initial = new TrainerState(0, 0, 0, optimizer.name(), 0, seed, batchSize, pack, rows.size(), steps);
        long start = 0;
        if (resume != null) {
            TrainerState saved = TrainerState.read(resume);
            saved.checkCompatible(initial, resume);
            start = saved.step();
            batches.seek(new Batches.Position(saved.epoch(), saved.index()));
            optimizer.loadState(readOptimizerState(resume), saved.optimizerStep());
        }
        Files.createDirectories(output);
        // A run killed during a save may have left a checkpoint moved aside: put it back first.
        for (Path folder : List.of(output, output.resolve("checkpoints"))) {
            for (String name : dev.collie.runtime.checkpoint.HfCheckpointWriter.recover(folder)) {
                out.println("recovered " + folder.resolve(name) + " from an interrupted save");
            }
        }
        settings.write(output.resolve("settings.json"));
        out.printf("data: %d training rows%s (%d examples, %,d tokens, %d truncated), %d eval examples; %d steps of "
                        + "batch %d with %s%n", rows.size(), pack ? " packed" : "", train.size(), loaded.stats().tokens(),
                loaded.stats().truncatedRows(), eval.size(), steps, batchSize, optimizer.name());
        loaded.stats().warnings().forEach(out::println);

        Sampling sampling = new Sampling((int) settings.integer("max_new_tokens"), settings.real("temperature"),
                (int) settings.integer("top_k"), settings.real("top_p"), seed);
        Evaluator evaluator = new Evaluator(session, tokenizer, batchSize);
        Generator generator = session.canGenerate() && !eval.isEmpty()
                ? new Generator(session.executor(), maxLength + sampling.maxNewTokens() + 1) : null;
        List<Double> losses = new ArrayList<>();
        Evaluator.Result before = null;
        Evaluator.Result after = null;
        try (MetricsWriter metrics = MetricsWriter.open(output, List.of("perplexity", "exact_match"), start);
             TrainingProgress progress = new TrainingProgress(steps, settings.bool("quiet"), out, start)) {
            if (!eval.isEmpty() && start == 0) {
                before = evaluate(evaluator, eval, sampling, generator, 0, metrics, progress);
            }
            long evalEvery = settings.integer("eval_every");
            long saveEvery = settings.integer("save_every");
            for (long step = start + 1; step <= steps; step++) {
                double lr = schedule.at(step);
                long begin = System.nanoTime();
                Session.StepResult r;
                long tokens;
                try (Batch batch = Batch.of(batches.next(batchSize).toArrays(tokenizer.padId().orElse(0)))) {
                    r = session.trainStep(batch, lr, clip);
                    tokens = batch.tokenCount();
                }
                double seconds = (System.nanoTime() - begin) / 1e9;
                boolean finite = Double.isFinite(r.loss()) && (clip == null || Double.isFinite(r.gradNorm()));
                if (!finite && clip == null) {
                    throw new TrainingDiverged(step, r.loss(), "the weights of this step may be damaged: restart "
                            + "from the last checkpoint with a lower --lr, --clip-norm or guard_nonfinite");
                }
                if (!finite) {
                    bad++;
                    progress.log(String.format("step %d skipped: loss %s, gradient norm %s (no weight was changed)",
                            step, r.loss(), r.gradNorm()));
                    if (bad >= maxBad) {
                        throw new TrainingDiverged(step, r.loss(), bad + " consecutive steps were not finite; no weight "
                                + "was changed by them, and the last checkpoint saved is intact");
                    }
                    continue;
                }
                bad = 0;
                losses.add(r.loss());
                StepMetrics m = new StepMetrics(step, steps, r.loss(), lr, r.gradNorm(), tokens, seconds,
                        tokens / seconds, tokens / seconds, NativeMemory.peakBytes(), StepMetrics.TRAIN, Map.of());
                metrics.write(m);
                progress.update(m);
                if (!eval.isEmpty() && evalEvery > 0 && step % evalEvery == 0 && step < steps) {
                    evaluate(evaluator, eval, sampling, generator, step, metrics, progress);
                }
                boolean interrupted = stopRequested.get();
                if ((saveEvery > 0 && step % saveEvery == 0 && step < steps) || (interrupted && step < steps)) {
                    Path dir = output.resolve("checkpoints").resolve(String.format("step-%08d", step));
                    save(dir, new TrainerState(step, batches.position().epoch(), batches.position().index(),
                            optimizer.name(), optimizer.step(), seed, batchSize, pack, rows.size(), steps));
                    progress.log("saved " + dir);
                    if (interrupted) {
                        throw new Interrupted(step, dir);
                    }
                }
            }
            if (!eval.isEmpty()) {
                after = evaluate(evaluator, eval, sampling, generator, steps, metrics, progress);
            }
            save(finalDir, new TrainerState(steps, batches.position().epoch(), batches.position().index(),
                    optimizer.name(), optimizer.step(), seed, batchSize, pack, rows.size(), steps));
        } finally {
            if (generator != null) {
                generator.close();
            }
        }
        LossPlot.write(output.resolve("loss.png"), MetricsWriter.read(output));
        return new Outcome(start + 1, steps, losses.isEmpty() ? Double.NaN : losses.getFirst(),
                losses.isEmpty() ? Double.NaN : losses.getLast(), losses, before, after, output, finalDir);
    }

    private Evaluator.Result evaluate(Evaluator evaluator, List<Example> eval, Sampling sampling, Generator generator,
                                      long step, MetricsWriter metrics, TrainingProgress progress) throws IOException {
        long begin = System.nanoTime();
        Evaluator.Result r = evaluator.evaluate(eval, (int) settings.integer("eval_prompts"), sampling, generator);
        double seconds = (System.nanoTime() - begin) / 1e9;
        Map<String, Double> extra = new LinkedHashMap<>();
        extra.put("perplexity", r.perplexity());
        if (r.scored() > 0) {
            extra.put("exact_match", r.exactMatch());
        }
        metrics.write(new StepMetrics(step, settings.integer("steps"), r.loss(), Double.NaN, Double.NaN, r.tokens(),
                seconds, r.tokens() / seconds, r.tokens() / seconds, NativeMemory.peakBytes(), StepMetrics.EVAL, extra));
        progress.log(String.format("eval at step %d: loss %.4f  perplexity %.2f%s", step, r.loss(), r.perplexity(),
                r.scored() > 0 ? String.format("  exact match %.1f%% of %d", r.exactMatch(), r.scored()) : ""));
        try {
            LossPlot.write(output.resolve("loss.png"), MetricsWriter.read(output));
        } catch (IOException | OutputError e) {
            progress.log("could not draw loss.png: " + e.getMessage());
        }
        return r;
    }

    /** A checkpoint with everything needed to resume, written atomically. */
    private void save(Path dir, TrainerState state) {
        // Named like the checkpoint writers' temporaries, so that if this process is killed while
        // the state is staged, the next run's recover() deletes what is left here.
        Path staging = output.resolve(".state.tmp-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
        try {
            Files.createDirectory(staging);
            List<Path> extra = new ArrayList<>(tokenizer.files());
            Path stateFile = staging.resolve(TrainerState.FILE);
            state.write(stateFile);
            extra.add(stateFile);
            Map<String, Tensor> opt = optimizer.state();
            if (!opt.isEmpty()) {
                Path optFile = staging.resolve(TrainerState.OPTIMIZER_FILE);
                var entries = new ArrayList<SafetensorsWriter.Entry>();
                opt.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> entries.add(
                        new SafetensorsWriter.Entry(e.getKey(), StDType.F32, e.getValue().shape, e.getValue().data)));
                SafetensorsWriter.write(optFile, entries, Map.of("optimizer", optimizer.name()));
                extra.add(optFile);
            }
            session.save(dir, extra);
        } catch (IOException e) {
            throw new CheckpointException(dir, null, "cannot save checkpoint: " + CheckpointException.describe(e), e);
        } catch (CheckpointException e) {
            // The optimizer state is written in the staging folder first; the user knows the checkpoint.
            if (!dir.equals(e.file()) && e.getCause() instanceof IOException io) {
                throw new CheckpointException(dir, null, "cannot save checkpoint: " + CheckpointException.describe(io), e);
            }
            throw e;
        } finally {
            deleteQuietly(staging);
        }
    }

    /** Cleanup after a save, successful or not: a failure here must not hide the save's own outcome. */
    private static void deleteQuietly(Path tree) {
        if (!Files.exists(tree)) {
            return;
        }
        try (var files = Files.walk(tree)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | java.io.UncheckedIOException ignored) {
            // recover() removes the leftover at the start of the next run
        }
    }

    private static Map<String, float[]> readOptimizerState(Path dir) {
        Path file = dir.resolve(TrainerState.OPTIMIZER_FILE);
        Map<String, float[]> out = new HashMap<>();
        if (!Files.exists(file)) {
            return out;
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (var t : f.tensors().values()) {
                MemorySegment seg = MemorySegment.ofArray(new float[(int) t.numel()]);
                f.readAsF32(t.name(), seg);
                out.put(t.name(), seg.toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT));
            }
        }
        return out;
    }

    /** Set by SIGINT/SIGTERM: the loop finishes its step, saves a checkpoint and stops. */
    private final java.util.concurrent.atomic.AtomicBoolean stopRequested = new java.util.concurrent.atomic.AtomicBoolean();

    /** Asks the run to save and stop after the current step (what a signal handler calls). */
    public void requestStop() {
        stopRequested.set(true);
    }

    /** The run was stopped on request after saving a resumable checkpoint. */
    public static final class Interrupted extends RuntimeException implements dev.collie.compiler.cli.CliSupport.UserError {
        public final Path checkpoint;

        Interrupted(long step, Path checkpoint) {
            super("interrupted after step " + step + "; saved " + checkpoint + " (continue with --resume " + checkpoint
                    + ")", null, false, false);
            this.checkpoint = checkpoint;
        }

        @Override
        public String userMessage() {
            return getMessage();
        }
    }

    /** A step whose loss is not a finite number: the run stops instead of training on garbage. */
    public static final class TrainingDiverged extends RuntimeException
            implements dev.collie.compiler.cli.CliSupport.UserError {
        TrainingDiverged(long step, double loss, String what) {
            super("training diverged at step " + step + " (loss " + loss + "): " + what, null, false, false);
        }

        @Override
        public String userMessage() {
            return "error: " + getMessage();
        }
    }

}
