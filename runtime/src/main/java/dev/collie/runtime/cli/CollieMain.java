package dev.collie.runtime.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.compiler.cli.CliSupport;
import dev.collie.runtime.checkpoint.HfCheckpointWriter;
import dev.collie.runtime.data.ChatTemplate;
import dev.collie.runtime.data.Example;
import dev.collie.runtime.data.FormatOptions;
import dev.collie.runtime.data.JsonlExamples;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.generate.Generator;
import dev.collie.runtime.generate.Sampling;
import dev.collie.runtime.optim.Optimizers;
import dev.collie.runtime.tokenizer.Tokenizer;
import dev.collie.runtime.tokenizer.Tokenizers;
import dev.collie.runtime.train.Evaluator;
import dev.collie.runtime.train.TrainSettings;
import dev.collie.runtime.train.Trainer;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ForkJoinPool;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** `collie`: fine-tune, evaluate and generate with models compiled from `.collie` files. */
@Command(name = "collie", mixinStandardHelpOptions = true, version = "collie 0.1.0",
        description = "Full-parameter fine-tuning with optimizers fused into the backward pass.",
        subcommands = {CollieMain.Run.class, CollieMain.Eval.class, CollieMain.Generate.class, Bench.class})
public final class CollieMain implements Runnable {

    @Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(CliSupport.execute(new CollieMain(), args));
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Options naming the model and where its weights come from. */
    static final class ModelOptions {
        @Option(names = "--checkpoint", paramLabel = "DIR", description = "a Hugging Face checkpoint directory "
                + "(config.json + safetensors); its config.json sets the hyper-parameters")
        Path checkpoint;

        @Option(names = "--preset", description = "a preset of the .collie file (overrides config.json)")
        String preset;

        @Option(names = "--set", paramLabel = "KEY=VALUE", description = "override one hyper-parameter")
        List<String> sets;

        @Option(names = "--seed", description = "seed for initialisation, shuffling and sampling (default 0)")
        Long seed;

        Session open(Path model, Path weights) {
            return open(model, weights, dev.collie.compiler.ir.DType.F32);
        }

        Session open(Path model, Path weights, dev.collie.compiler.ir.DType storage) {
            return open(model, weights, storage, dev.collie.compiler.passes.CompileOptions.Recompute.OFF);
        }

        Session open(Path model, Path weights, dev.collie.compiler.ir.DType storage,
                     dev.collie.compiler.passes.CompileOptions.Recompute recompute) {
            return open(model, weights, storage, recompute, true);
        }

        /** @param elementwiseUpdates whether the run's optimizer updates elementwise (see CompileOptions) */
        Session open(Path model, Path weights, dev.collie.compiler.ir.DType storage,
                     dev.collie.compiler.passes.CompileOptions.Recompute recompute, boolean elementwiseUpdates) {
            if (weights != null && !Files.isDirectory(weights)) {
                throw new CliSupport.UsageError("checkpoint " + weights + ": "
                        + (Files.exists(weights) ? "not a directory" : "no such directory"));
            }
            return Session.open(Session.ModelSpec.of(model, preset, CliSupport.sets(sets)), weights,
                    seed == null ? 0 : seed, storage,
                    dev.collie.compiler.passes.CompileOptions.DEFAULT.withRecompute(recompute)
                            .withElementwiseUpdates(elementwiseUpdates));
        }
    }

    /** A folder Collie will write into must be a folder (or not exist yet) under a writable parent. */
    static void requireWritableDir(Path p, String what) {
        if (p == null) {
            return;
        }
        if (Files.exists(p) && !Files.isDirectory(p)) {
            throw new CliSupport.UsageError(what + " " + p + ": exists and is not a folder");
        }
        Path existing = p.toAbsolutePath();
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        if (existing == null || !Files.isDirectory(existing) || !Files.isWritable(existing)) {
            throw new CliSupport.UsageError(what + " " + p + ": cannot write there (" + existing + " is not a writable "
                    + "folder)");
        }
    }

    static void requireFile(Path p, String what) {
        if (p != null && !Files.exists(p)) {
            throw new CliSupport.UsageError(what + " " + p + ": no such file");
        }
    }

    /** The checkpoint's tokenizer.json, or bytes; "byte" forces bytes. */
    static Tokenizer tokenizerFor(String choice, Path checkpoint) {
        if ("byte".equals(choice) || checkpoint == null || !Files.exists(checkpoint.resolve("tokenizer.json"))) {
            return Tokenizers.byteLevel();
        }
        return Tokenizers.load(checkpoint);
    }

    @Command(name = "run", mixinStandardHelpOptions = true, sortOptions = false,
            description = {"Fine-tune every parameter, each updated the moment its gradient is complete.",
                    "With no arguments: a built-in demo that teaches a small LLaMA a task and shows its accuracy."})
    static final class Run implements Callable<Integer> {
        @Parameters(index = "0", arity = "0..1", paramLabel = "FILE|PLAN", description = "a .collie file or a plan")
        Path model;

        @CommandLine.Mixin
        ModelOptions modelOptions = new ModelOptions();

        @Option(names = "--data", paramLabel = "FILE.jsonl",
                description = "training data: {\"text\"}, {\"prompt\",\"response\"}, {\"messages\"} or {\"input_ids\",\"labels\"} rows")
        String data;

        @Option(names = "--eval-data", paramLabel = "FILE.jsonl", description = "held-out data for evaluation")
        String evalData;

        @Option(names = "--run-config", paramLabel = "FILE.json", description = "training settings (JSON); flags override")
        Path runConfig;

        @Option(names = "--output", paramLabel = "DIR", description = "run folder (default runs/<model>-<time>)")
        Path output;

        @Option(names = "--save", paramLabel = "DIR", description = "where the final checkpoint goes (default <output>/final)")
        Path save;

        @Option(names = "--resume", paramLabel = "DIR", description = "continue from a checkpoint this command saved")
        Path resume;

        @Option(names = "--steps") Long steps;
        @Option(names = "--epochs") Long epochs;
        @Option(names = "--lr") Double lr;
        @Option(names = "--optimizer", description = "lomo or adalomo") String optimizer;
        @Option(names = "--schedule", description = "constant, linear or cosine") String schedule;
        @Option(names = "--warmup-steps") Long warmupSteps;
        @Option(names = "--min-lr") Double minLr;
        @Option(names = "--batch-size") Long batchSize;
        @Option(names = "--max-length", description = "longest row in tokens") Long maxLength;
        @Option(names = "--clip-norm") Double clipNorm;
        @Option(names = "--weight-decay") Double weightDecay;
        @Option(names = "--gradient-accumulation", description = "must be 1 (see the message if not)") Long accumulation;
        @Option(names = "--pack", arity = "0..1", fallbackValue = "true") Boolean pack;
        @Option(names = "--shuffle", arity = "0..1", fallbackValue = "true") Boolean shuffle;
        @Option(names = "--eval-every") Long evalEvery;
        @Option(names = "--eval-fraction") Double evalFraction;
        @Option(names = "--eval-prompts") Long evalPrompts;
        @Option(names = "--save-every") Long saveEvery;
        @Option(names = "--tokenizer", description = "auto or byte") String tokenizer;
        @Option(names = "--max-new-tokens") Long maxNewTokens;
        @Option(names = "--temperature") Double temperature;
        @Option(names = "--top-k") Long topK;
        @Option(names = "--top-p") Double topP;
        @Option(names = "--threads") Long threads;
        @Option(names = "--dtype", description = "weight storage: fp32 or bf16") String dtype;
        @Option(names = "--quiet", description = "plain log lines instead of a progress bar") boolean quiet;
        @Option(names = "--memory-check", arity = "0..1", fallbackValue = "true",
                description = "stop before the first step if the planned peak exceeds available memory (default true)")
        Boolean memoryCheck;
        @Option(names = "--activation-checkpointing", arity = "0..1", fallbackValue = "full", paramLabel = "MODE",
                description = "full (when given alone) or selective: recompute each block's forward, or only its "
                        + "cheap ops, before its backward instead of keeping the activations") String checkpointing;

        @Spec
        CommandLine.Model.CommandSpec spec;

        Map<String, Object> flags() {
            Map<String, Object> f = new LinkedHashMap<>();
            put(f, "data", data);
            put(f, "eval_data", evalData);
            put(f, "steps", steps);
            put(f, "epochs", epochs);
            put(f, "lr", lr);
            put(f, "optimizer", optimizer);
            put(f, "schedule", schedule);
            put(f, "warmup_steps", warmupSteps);
            put(f, "min_lr", minLr);
            put(f, "batch_size", batchSize);
            put(f, "max_length", maxLength);
            put(f, "clip_norm", clipNorm);
            put(f, "weight_decay", weightDecay);
            put(f, "gradient_accumulation", accumulation);
            put(f, "pack", pack);
            put(f, "shuffle", shuffle);
            put(f, "eval_every", evalEvery);
            put(f, "eval_fraction", evalFraction);
            put(f, "eval_prompts", evalPrompts);
            put(f, "save_every", saveEvery);
            put(f, "tokenizer", tokenizer);
            put(f, "max_new_tokens", maxNewTokens);
            put(f, "temperature", temperature);
            put(f, "top_k", topK);
            put(f, "top_p", topP);
            put(f, "threads", threads);
            put(f, "dtype", dtype);
            put(f, "seed", modelOptions.seed);
            if (quiet) {
                f.put("quiet", true);
            }
            put(f, "activation_checkpointing", checkpointing);
            put(f, "memory_check", memoryCheck);
            return f;
        }

        private static void put(Map<String, Object> f, String key, Object value) {
            if (value != null) {
                f.put(key, value);
            }
        }

        @Override
        public Integer call() throws Exception {
            PrintStream out = new PrintStream(new WriterOutputStream(spec.commandLine().getOut()), true);
            if (model == null) {
                if (data != null || modelOptions.checkpoint != null || resume != null) {
                    throw new CliSupport.UsageError("FILE|PLAN is required with --data, --checkpoint or --resume");
                }
                return DemoRun.run(out, DemoRun.DEFAULT_STEPS, output);
            }
            requireFile(model, "model");
            requireFile(runConfig, "--run-config");
            requireWritableDir(output, "--output");
            requireWritableDir(save, "--save");
            if (resume != null && modelOptions.checkpoint != null && !resume.equals(modelOptions.checkpoint)) {
                throw new CliSupport.UsageError("--resume and --checkpoint name different folders: a resumed run "
                        + "takes its weights from the --resume checkpoint; drop --checkpoint");
            }
            // A save killed between its two renames leaves the checkpoint it was replacing under a
            // hidden name: the folder asked for is intact, only moved aside.
            if (resume != null && HfCheckpointWriter.recoverMovedAside(resume)) {
                out.println("recovered " + resume + " from an interrupted save");
            }
            if (resume != null && !Files.isDirectory(resume)) {
                throw new CliSupport.UsageError("--resume " + resume + ": no such directory");
            }
            Path weights = resume != null ? resume : modelOptions.checkpoint;
            Session opened = modelOptions.open(model, weights, "bf16".equals(dtype)
                    ? dev.collie.compiler.ir.DType.BF16 : dev.collie.compiler.ir.DType.F32, recomputeMode(checkpointing));
            TrainSettings settings = TrainSettings.resolve(opened.plan().train(), runConfig, flags());
            boolean bf16 = settings.string("dtype").equals("bf16");
            var recompute = recomputeMode(settings.string("activation_checkpointing"));
            boolean elementwise = Optimizers.elementwise(settings.string("optimizer"));
            if ((bf16 && opened.params().storage() != dev.collie.compiler.ir.DType.BF16)
                    || recompute != recomputeMode(checkpointing) || !elementwise) {
                // The model file or run config asked for bf16 weights, checkpointing or an optimizer that
                // needs whole gradients: open it that way.
                opened.close();
                opened = modelOptions.open(model, weights, bf16 ? dev.collie.compiler.ir.DType.BF16
                        : dev.collie.compiler.ir.DType.F32, recompute, elementwise);
            }
            try (Session session = opened) {
                requireFile(Path.of(settings.string("data").isEmpty() ? "." : settings.string("data")), "--data");
                Path dir = output != null ? output : Path.of("runs", session.plan().model() + "-"
                        + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
                try (Tokenizer tok = tokenizerFor(settings.string("tokenizer"), weights)) {
                    out.printf("model '%s' (%s): %,d parameters; output %s%n", session.plan().model(),
                            session.plan().origin(), session.plan().parameterCount(), dir);
                    Trainer trainer = new Trainer(session, settings, tok, Optimizers.create(settings, session.params()),
                            dir, resume, save, out);
                    Signals.onInterrupt(trainer::requestStop);
                    Trainer.Outcome outcome;
                    try {
                        outcome = inPool((int) settings.integer("threads"), trainer::run);
                    } catch (Trainer.Interrupted e) {
                        spec.commandLine().getErr().println(e.getMessage());
                        return 130;
                    }
                    out.printf("trained steps %d..%d: loss %.4f -> %.4f; checkpoint %s; metrics %s; plot %s%n",
                            outcome.firstStep(), outcome.lastStep(), outcome.firstLoss(), outcome.lastLoss(),
                            outcome.finalCheckpoint(), dir.resolve("metrics.jsonl"), dir.resolve("loss.png"));
                }
            }
            return 0;
        }
    }

    /** The activation-checkpointing mode named by a flag or setting (null: off). */
    static dev.collie.compiler.passes.CompileOptions.Recompute recomputeMode(String name) {
        try {
            return name == null ? dev.collie.compiler.passes.CompileOptions.Recompute.OFF
                    : dev.collie.compiler.passes.CompileOptions.Recompute.parse(name);
        } catch (IllegalArgumentException e) {
            throw new CliSupport.UsageError("--activation-checkpointing: " + e.getMessage());
        }
    }

    /** Runs {@code body} with kernels on {@code threads} threads (0: the common pool, all cores). */
    static <T> T inPool(int threads, Callable<T> body) throws Exception {
        if (threads <= 0) {
            return body.call();
        }
        ForkJoinPool pool = new ForkJoinPool(threads);
        try {
            return pool.submit(body).get();
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof Exception cause) {
                throw cause;
            }
            throw e;
        } finally {
            pool.shutdown();
        }
    }

    @Command(name = "eval", mixinStandardHelpOptions = true,
            description = "Loss, perplexity and (for prompt/response data) exact match, as JSON on stdout.")
    static final class Eval implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "FILE|PLAN")
        Path model;

        @CommandLine.Mixin
        ModelOptions modelOptions = new ModelOptions();

        @Option(names = "--data", required = true, paramLabel = "FILE.jsonl")
        Path data;

        @Option(names = "--batch-size", defaultValue = "8", description = "rows per forward (default ${DEFAULT-VALUE})")
        int batchSize;

        @Option(names = "--max-length", defaultValue = "2048", description = "longer rows are truncated")
        int maxLength;

        @Option(names = "--eval-prompts", defaultValue = "0", description = "examples to generate answers for")
        int prompts;

        @Option(names = "--tokenizer", defaultValue = "auto")
        String tokenizer;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            requireFile(model, "model");
            requireFile(data, "--data");
            try (Session session = modelOptions.open(model, modelOptions.checkpoint);
                 Tokenizer tok = tokenizerFor(tokenizer, modelOptions.checkpoint)) {
                int length = session.maxSequence() > 0 ? (int) Math.min(maxLength, session.maxSequence()) : maxLength;
                List<Example> examples = JsonlExamples.read(data, tok, ChatTemplate.defaults(),
                        new FormatOptions((int) session.vocabSize(), length, true));
                Generator generator = prompts > 0 && session.canGenerate() ? new Generator(session.executor(),
                        length + 65) : null;
                Evaluator.Result r;
                try {
                    r = new Evaluator(session, tok, batchSize).evaluate(examples, prompts, Sampling.greedy(64), generator);
                } finally {
                    if (generator != null) {
                        generator.close();
                    }
                }
                ObjectNode json = new ObjectMapper().createObjectNode();
                json.put("loss", r.loss());
                json.put("perplexity", r.perplexity());
                json.put("tokens", r.tokens());
                if (r.scored() > 0) {
                    json.put("exact_match", r.exactMatch());
                    json.put("scored", r.scored());
                }
                spec.commandLine().getOut().println(json);
            }
            return 0;
        }
    }

    @Command(name = "generate", mixinStandardHelpOptions = true,
            description = "Continue a prompt, printing tokens as they are produced.")
    static final class Generate implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "FILE|PLAN")
        Path model;

        @CommandLine.Mixin
        ModelOptions modelOptions = new ModelOptions();

        @Option(names = "--prompt", required = true)
        String prompt;

        @Option(names = "--chat", description = "wrap the prompt as a user turn of the default chat template")
        boolean chat;

        @Option(names = "--max-new-tokens", defaultValue = "128") int maxNewTokens;
        @Option(names = "--temperature", defaultValue = "0") double temperature;
        @Option(names = "--top-k", defaultValue = "0") int topK;
        @Option(names = "--top-p", defaultValue = "1.0") double topP;
        @Option(names = "--tokenizer", defaultValue = "auto") String tokenizer;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            requireFile(model, "model");
            PrintWriter out = spec.commandLine().getOut();
            try (Session session = modelOptions.open(model, modelOptions.checkpoint);
                 Tokenizer tok = tokenizerFor(tokenizer, modelOptions.checkpoint)) {
                if (!session.canGenerate()) {
                    throw new CliSupport.UsageError("model '" + session.plan().model() + "' cannot generate: its forward "
                            + "must take a positions input and output logits");
                }
                long[] ids = chat ? ChatTemplate.defaults().encodeForGeneration(
                        List.of(new ChatTemplate.Message("user", prompt)), tok) : tok.encode(prompt, true);
                Sampling sampling = new Sampling(maxNewTokens, temperature, topK, topP,
                        modelOptions.seed == null ? 0 : modelOptions.seed);
                int capacity = (int) Math.min(Integer.MAX_VALUE - 1, (long) ids.length + maxNewTokens + 1);
                if (session.maxSequence() > 0 && capacity > session.maxSequence()) {
                    capacity = (int) session.maxSequence();
                }
                Tokenizer.StreamDecoder decoder = tok.streamDecoder();
                try (Generator g = new Generator(session.executor(), capacity)) {
                    g.generate(ids, sampling, tok.eosId(), id -> {
                        if (tok.eosId().isPresent() && id == tok.eosId().getAsLong()) {
                            return;
                        }
                        out.print(decoder.push(id));
                        out.flush();
                    });
                }
                out.println();
            }
            return 0;
        }
    }
}
