package dev.collie.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.collie.compiler.cli.CliSupport;
import dev.collie.dsl.SourceFile;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.optim.Optimizers;
import dev.collie.runtime.report.MetricsWriter;
import dev.collie.runtime.report.StepMetrics;
import dev.collie.runtime.tokenizer.Tokenizers;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The fine-tuning loop: reproducible, resumable, and every setting where the user put it. */
class TrainerTest {

    static Path data;

    @BeforeAll
    static void writeData(@TempDir Path dir) throws Exception {
        data = dir;
        StringBuilder train = new StringBuilder();
        StringBuilder eval = new StringBuilder();
        for (int i = 0; i < 60; i++) {
            String digits = String.format("%03d", (i * 37) % 1000);
            String row = "{\"prompt\": \"reverse " + digits + " =\", \"response\": \" "
                    + new StringBuilder(digits).reverse() + "\"}\n";
            (i < 52 ? train : eval).append(row);
        }
        Files.writeString(dir.resolve("train.jsonl"), train);
        Files.writeString(dir.resolve("eval.jsonl"), eval);
        Files.writeString(dir.resolve("text.jsonl"), "{\"text\": \"one two three\"}\n{\"text\": \"four five\"}\n"
                + "{\"text\": \"six seven eight nine\"}\n{\"text\": \"ten\"}\n");
    }

    static Session tinyModel(Path checkpoint) {
        return Session.open(new Session.ModelSpec(Path.of("../models/llama.collie"), null, "tiny",
                Map.of("vocab", "259")), checkpoint, 0);
    }

    static Map<String, Object> flags(Object... kv) {
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("data", data.resolve("train.jsonl").toString());
        f.put("optimizer", "adalomo");
        f.put("lr", 1e-2);
        f.put("batch_size", 8L);
        f.put("quiet", true);
        f.put("tokenizer", "byte");
        for (int i = 0; i < kv.length; i += 2) {
            f.put((String) kv[i], kv[i + 1]);
        }
        return f;
    }

    static Trainer.Outcome train(Path out, Path resume, Map<String, Object> flags) throws Exception {
        try (Session s = tinyModel(resume)) {
            TrainSettings settings = TrainSettings.resolve(s.plan().train(), null, flags);
            var bytes = new ByteArrayOutputStream();
            return new Trainer(s, settings, Tokenizers.byteLevel(), Optimizers.create(settings, s.params()), out,
                    resume, null, new PrintStream(bytes, true)).run();
        }
    }

    @Test
    void aRunThatDoesNotFitStopsBeforeItsFirstStep() {
        long gib = 1L << 30;
        String error = Trainer.memoryError(30 * gib, 20 * gib, true);
        assertTrue(error != null && error.contains("needs 30.00 GiB (planned peak) but this machine has 20.00 GiB")
                && error.contains("--memory-check=false"), error);
        assertEquals(null, Trainer.memoryError(30 * gib, 20 * gib, false), "memory_check = false runs anyway");
        assertEquals(null, Trainer.memoryError(10 * gib, 20 * gib, true));
        assertEquals(null, Trainer.memoryError(30 * gib, -1, true), "unknown available memory: no verdict");
    }

    @Test
    void aResumedRunContinuesExactlyLikeAnUninterruptedOne(@TempDir Path tmp) throws Exception {
        Map<String, Object> f = flags("steps", 8L, "save_every", 3L, "schedule", "cosine", "warmup_steps", 2L,
                "clip_norm", 1.0);
        Trainer.Outcome whole = train(tmp.resolve("whole"), null, f);
        Path step3 = tmp.resolve("whole").resolve("checkpoints").resolve("step-00000003");
        assertTrue(Files.exists(step3.resolve("trainer_state.json")) && Files.exists(step3.resolve("optimizer.safetensors")));
        Trainer.Outcome resumed = train(tmp.resolve("resumed"), step3, f);
        assertEquals(4, resumed.firstStep());
        assertEquals(whole.losses().subList(3, 8), resumed.losses(), "losses after resuming, bit for bit");
        // The resumed run's metrics read as one run: steps 1..3 from before, 4..8 now.
        List<StepMetrics> m = MetricsWriter.read(tmp.resolve("resumed"));
        assertEquals(5, m.stream().filter(x -> !x.isEval()).count());
    }

    @Test
    void theSameSettingsTwiceGiveTheSameLossesBitForBit(@TempDir Path tmp) throws Exception {
        Map<String, Object> f = flags("steps", 5L, "pack", true, "max_length", 48L);
        Trainer.Outcome a = train(tmp.resolve("a"), null, f);
        Trainer.Outcome b = train(tmp.resolve("b"), null, f);
        assertEquals(a.losses(), b.losses());
        Trainer.Outcome c = train(tmp.resolve("c"), null, flags("steps", 5L, "pack", true, "max_length", 48L,
                "seed", 1L));
        assertTrue(!a.losses().equals(c.losses()), "another seed shuffles differently");
    }

    @Test
    void evaluationReportsLossAndExactMatchBeforeAndAfter(@TempDir Path tmp) throws Exception {
        Trainer.Outcome o = train(tmp, null, flags("steps", 4L, "eval_data", data.resolve("eval.jsonl").toString(),
                "eval_prompts", 3L, "max_new_tokens", 5L, "eval_every", 2L));
        assertEquals(3, o.before().scored());
        assertTrue(Double.isFinite(o.before().loss()) && o.after().loss() < o.before().loss());
        List<StepMetrics> evals = MetricsWriter.read(tmp).stream().filter(StepMetrics::isEval).toList();
        assertEquals(List.of(0L, 2L, 4L), evals.stream().map(StepMetrics::step).toList());
        assertTrue(evals.getFirst().extra().containsKey("exact_match"));
        assertTrue(Files.size(tmp.resolve("loss.png")) > 1000);
        JsonNode settings = new ObjectMapper().readTree(tmp.resolve("settings.json").toFile());
        assertEquals("adalomo", settings.get("optimizer").asText());
        assertEquals(4, settings.get("steps").asInt());
    }

    @Test
    void textRowsTrainWithLomoAndPacking(@TempDir Path tmp) throws Exception {
        Trainer.Outcome o = train(tmp, null, flags("data", data.resolve("text.jsonl").toString(), "optimizer", "lomo",
                "lr", 0.05, "steps", 3L, "pack", true, "max_length", 40L, "weight_decay", 0.01));
        assertEquals(3, o.losses().size());
        assertTrue(o.losses().stream().allMatch(Double::isFinite));
    }

    @Test
    void gradientAccumulationIsRefusedWithTheReason() {
        var e = assertThrows(CliSupport.UsageError.class, () -> TrainSettings.resolve(Map.of(), null,
                Map.of("gradient_accumulation", 4L)));
        assertTrue(e.getMessage().contains("in-place updates") && e.getMessage().contains("batch_size"),
                e.getMessage());
    }

    @Test
    void settingsComeFromTheModelThenTheRunConfigThenFlags(@TempDir Path tmp) throws Exception {
        Path config = tmp.resolve("run.json");
        Files.writeString(config, "{\n  \"lr\": 0.002,\n  \"batch_size\": 4,\n  \"chat\": {\"user_prefix\": \"U: \"}\n}\n");
        TrainSettings s = TrainSettings.resolve(Map.of("lr", 0.5, "steps", 7L, "batch_size", 2L), config,
                Map.of("batch_size", 16L));
        assertEquals(0.002, s.real("lr"));
        assertEquals(7, s.integer("steps"));
        assertEquals(16, s.integer("batch_size"));
        assertEquals(Map.of("user_prefix", "U: "), s.chat());
        Files.writeString(config, "{\n  \"lr\": 0.002,\n  \"batchsize\": 4\n}\n");
        var e = assertThrows(dev.collie.dsl.CollieException.class, () -> TrainSettings.resolve(Map.of(), config, Map.of()));
        assertTrue(e.render().startsWith(config + ":3:3: error: unknown train setting 'batchsize'; did you mean "
                + "'batch_size'?"), e.render());
    }

    @Test
    void theModelFilesTrainSectionIsChecked() {
        SourceFile src = new SourceFile("m.collie", """
                model m
                hyper { dim: int = 8 }
                param w: [dim, dim] = normal(0.02) as "w"
                forward(tokens: [B, T] int, labels: [B, T] int) {
                  loss cross_entropy(embedding(tokens, w), labels)
                }
                train { optimizer = "adam" }
                """);
        var e = assertThrows(dev.collie.dsl.CollieException.class, () -> dev.collie.compiler.Compiler.resolve(
                dev.collie.compiler.Compiler.load(src), null, null, Map.of()));
        assertEquals("m.collie:7:21: error: train setting 'optimizer' must be one of [lomo, adalomo], got \"adam\"",
                e.diagnostics().getFirst().headline());
    }

    @Test
    void nonFiniteStepsAreSkippedWithoutTouchingAWeightThenTheRunStops(@TempDir Path tmp) throws Exception {
        try (Session s = tinyModel(null)) {
            // Poison the final norm: every loss and gradient becomes NaN.
            int poisoned = s.params().indexOf("model.norm.weight");
            s.params().tensor(poisoned).data.setAtIndex(dev.collie.runtime.tensor.Tensor.F32, 0, Float.NaN);
            List<float[]> before = new java.util.ArrayList<>();
            for (int i = 0; i < s.params().infos().size(); i++) {
                before.add(s.params().values(i));
            }
            TrainSettings settings = TrainSettings.resolve(s.plan().train(), null, flags("steps", 10L,
                    "guard_nonfinite", true, "max_bad_steps", 3L, "optimizer", "lomo", "lr", 0.1));
            var bytes = new ByteArrayOutputStream();
            Trainer t = new Trainer(s, settings, Tokenizers.byteLevel(), Optimizers.create(settings, s.params()), tmp,
                    null, null, new PrintStream(bytes, true));
            var e = assertThrows(Trainer.TrainingDiverged.class, t::run);
            assertTrue(e.getMessage().contains("3 consecutive steps were not finite"), e.getMessage());
            assertTrue(bytes.toString().contains("step 1 skipped"), bytes.toString());
            for (int i = 0; i < before.size(); i++) {
                assertTrue(java.util.Arrays.equals(before.get(i), s.params().values(i)),
                        s.params().infos().get(i).checkpointName() + " changed");
            }
        }
    }

    @Test
    void schedulesWarmUpThenDecay() {
        LrSchedule cosine = new LrSchedule("cosine", 1.0, 0.1, 10, 110);
        assertEquals(0.1, cosine.at(1), 1e-12);
        assertEquals(1.0, cosine.at(10), 1e-12);
        assertEquals(0.55, cosine.at(60), 1e-12);
        assertEquals(0.1, cosine.at(110), 1e-12);
        LrSchedule linear = new LrSchedule("linear", 1.0, 0.0, 0, 100);
        assertEquals(0.5, linear.at(50), 1e-12);
        assertEquals(1.0, new LrSchedule("constant", 1.0, 0, 0, 100).at(99));
    }
}
