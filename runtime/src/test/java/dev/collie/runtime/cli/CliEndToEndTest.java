package dev.collie.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.collie.compiler.cli.CliSupport;
import dev.collie.compiler.cli.ColliecMain;
import dev.collie.runtime.checkpoint.SafetensorsFile;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.testing.Fixtures;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The CLIs as a user runs them (in-process, same arguments), down to the files they write. */
class CliEndToEndTest {

    record Result(int code, String out, String err) {}

    static Result run(Object command, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = CliSupport.execute(command, args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(code, out.toString(), err.toString());
    }

    static Result collie(String... args) {
        return run(new CollieMain(), args);
    }

    static Result colliec(String... args) {
        return run(new ColliecMain(), args);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"llama-tiny-a,../models/llama.collie", "gpt2-tiny-g,../samples/gpt2.collie"})
    void runReproducesOneSgdStepAndSavesALoadableCheckpoint(String fixture, String model, @TempDir Path tmp)
            throws Exception {
        Path dir = Fixtures.fixture(fixture);
        JsonNode exp = new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
        Path out = tmp.resolve("out");
        Path run = tmp.resolve("run");
        Result r = collie("run", model, "--checkpoint", dir.toString(), "--data", dir.resolve("batch.jsonl").toString(),
                "--steps", "1", "--lr", exp.get("lr").asText(), "--batch-size", "2", "--shuffle=false", "--save",
                out.toString(), "--output", run.toString(), "--quiet");
        assertEquals(0, r.code(), r.err());
        double firstLoss = dev.collie.runtime.report.MetricsWriter.read(run).getFirst().loss();
        assertEquals(exp.get("loss").asDouble(), firstLoss, 1e-5 * firstLoss, r.out());
        assertTrue(Files.exists(run.resolve("settings.json")) && Files.exists(run.resolve("loss.png")));
        assertTrue(Files.exists(out.resolve("config.json")));
        try (SafetensorsFile saved = SafetensorsFile.open(out.resolve("model.safetensors"));
             SafetensorsFile want = SafetensorsFile.open(dir.resolve("expected_after_sgd1.safetensors"))) {
            assertEquals(want.tensors().keySet(), saved.tensors().keySet());
            for (String name : want.tensors().keySet()) {
                assertArrayEquals(want.tensors().get(name).shape(), saved.tensors().get(name).shape(), name);
                double err = Fixtures.relError(
                        Fixtures.read(out.resolve("model.safetensors"), name),
                        Fixtures.read(dir.resolve("expected_after_sgd1.safetensors"), name));
                assertTrue(err < 1e-5, name + " rel error " + err);
            }
        }
        // The saved checkpoint configures and loads the same model, bit for bit.
        try (Session back = Session.open(Session.ModelSpec.of(Path.of(model), null, Map.of()), out, 0)) {
            for (int i = 0; i < back.params().infos().size(); i++) {
                String name = back.params().infos().get(i).checkpointName();
                assertArrayEquals(Fixtures.read(out.resolve("model.safetensors"), name),
                        Fixtures.stored(back, i), name);
            }
        }
        Result eval = collie("eval", model, "--checkpoint", dir.toString(), "--data",
                dir.resolve("batch.jsonl").toString());
        assertEquals(0, eval.code(), eval.err());
        double loss = new ObjectMapper().readTree(eval.out()).get("loss").asDouble();
        assertEquals(exp.get("loss").asDouble(), loss, 1e-5 * loss);
    }

    @Test
    void compileThenRunAPlanTrainsAndTheLossFalls(@TempDir Path tmp) throws Exception {
        Path plan = tmp.resolve("tiny.plan.json");
        Result c = colliec("compile", "../models/llama.collie", "--preset", "tiny", "-o", plan.toString());
        assertEquals(0, c.code(), c.err());
        assertTrue(c.out().contains("107,328 parameters"), c.out());
        // every program's peak counts the runtime's floor, and the training step is checked against this machine
        assertTrue(c.out().contains("+ runtime 128.0 MiB"), c.out());
        if (java.nio.file.Files.exists(Path.of("/proc/meminfo"))) {
            assertTrue(c.out().matches("(?s).*this machine: [0-9.]+ MiB available; training fits in fp32 \\([0-9.]+ MiB\\), fits in bf16.*"),
                    c.out());
        }
        Path data = tmp.resolve("data.jsonl");
        StringBuilder rows = new StringBuilder();
        java.util.Random rnd = new java.util.Random(3);
        for (int r = 0; r < 16; r++) {
            int start = rnd.nextInt(128);
            int k = 1 + rnd.nextInt(3);
            long[] ids = new long[24];
            for (int t = 0; t < ids.length; t++) {
                ids[t] = (start + (long) k * t) % 128;
            }
            rows.append("{\"input_ids\": ").append(java.util.Arrays.toString(ids)).append("}\n");
        }
        Files.writeString(data, rows);
        Result r = collie("run", plan.toString(), "--data", data.toString(), "--steps", "12", "--lr", "0.1",
                "--batch-size", "4", "--clip-norm", "1.0", "--output", tmp.resolve("run").toString(), "--quiet");
        assertEquals(0, r.code(), r.err());
        // the planned peak of the step it is about to run, beside what this machine has, before step 1
        assertTrue(r.out().matches("(?s).*memory: planned peak [0-9.]+ GiB at batch 4 x 24 tokens; "
                + "([0-9.]+ GiB available|available memory unknown).*"), r.out());
        List<Double> losses = new ArrayList<>();
        Matcher m = Pattern.compile("(?m)^step \\d+/\\d+  loss ([0-9.]+)").matcher(r.out());
        while (m.find()) {
            losses.add(Double.parseDouble(m.group(1)));
        }
        assertEquals(12, losses.size(), r.out());
        assertTrue(losses.getLast() < losses.getFirst() - 0.1, "loss must fall: " + losses);
    }

    @Test
    void theEmbeddedDefaultRunsEndToEnd(@TempDir Path tmp) throws Exception {
        var bytes = new java.io.ByteArrayOutputStream();
        DemoRun.run(new java.io.PrintStream(bytes, true), 4, tmp);
        String out = bytes.toString();
        assertTrue(out.contains("exact match on 64 held-out prompts"), out);
        assertTrue(Files.exists(tmp.resolve("final").resolve("model.safetensors")), out);
        assertTrue(Files.exists(tmp.resolve("loss.png")) && Files.exists(tmp.resolve("metrics.csv")), out);

        // The checkpoint configures the model by itself (vocab 259 from its config.json) and generates.
        Path ckpt = tmp.resolve("final");
        Result g = collie("generate", "../models/llama.collie", "--checkpoint", ckpt.toString(), "--prompt",
                "reverse 123 =", "--max-new-tokens", "4");
        assertEquals(0, g.code(), g.err());
        assertTrue(g.out().endsWith("\n") && g.out().length() <= 5, "at most 4 byte tokens, then a newline: " + g.out());
        Result e = collie("eval", "../models/llama.collie", "--checkpoint", ckpt.toString(), "--data",
                tmp.resolve("data").resolve("eval.jsonl").toString(), "--eval-prompts", "4");
        assertEquals(0, e.code(), e.err());
        JsonNode json = new ObjectMapper().readTree(e.out());
        assertTrue(json.has("loss") && json.has("perplexity") && json.get("scored").asInt() == 4, e.out());
    }

    @Test
    void userErrorsAreOneClearMessageWithoutAStackTrace(@TempDir Path tmp) throws Exception {
        Path fixture = Fixtures.fixture("llama-tiny-a");
        Result missingData = collie("run", "../models/llama.collie", "--checkpoint", fixture.toString());
        assertEquals(2, missingData.code());
        assertTrue(missingData.err().contains("--data is required"), missingData.err());

        Result noFile = collie("run", tmp.resolve("nope.collie").toString(), "--data", "x.jsonl");
        assertEquals(2, noFile.code());

        Path bad = tmp.resolve("bad.jsonl");
        Files.writeString(bad, "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, 999]}\n");
        Result badData = collie("run", "../models/llama.collie", "--checkpoint", fixture.toString(), "--data",
                bad.toString(), "--output", tmp.resolve("run").toString());
        assertEquals(1, badData.code());
        assertTrue(badData.err().startsWith(bad + ":2: error: "), badData.err());
        assertTrue(badData.err().contains("999"), badData.err());

        Result badCheck = colliec("check", "../samples/errors/unknown_op.collie");
        assertEquals(1, badCheck.code());
        assertTrue(badCheck.err().startsWith("../samples/errors/unknown_op.collie:6:22: error: unknown op 'lineer'"),
                badCheck.err());
        Path file = tmp.resolve("a-file");
        Files.writeString(file, "x");
        Result badOutput = collie("run", "../models/llama.collie", "--data", bad.toString(), "--output", file.toString());
        assertEquals(2, badOutput.code());
        assertTrue(badOutput.err().contains("exists and is not a folder"), badOutput.err());
        Result contradictory = collie("run", "../models/llama.collie", "--data", bad.toString(), "--checkpoint",
                fixture.toString(), "--resume", tmp.toString());
        assertEquals(2, contradictory.code());
        assertTrue(contradictory.err().contains("--resume and --checkpoint"), contradictory.err());
        Result unknownFlag = collie("run", "../models/llama.collie", "--lerning-rate", "1");
        assertEquals(2, unknownFlag.code());
        assertTrue(unknownFlag.err().startsWith("collie run: error: Unknown options: '--lerning-rate'"), unknownFlag.err());
        for (Result r : List.of(missingData, noFile, badData, badCheck, badOutput, contradictory, unknownFlag)) {
            assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
        }
    }

    @Test
    void benchPrintsOneJsonLine() throws Exception {
        for (String dtype : List.of("fp32", "bf16")) {
            Result r = collie("bench", "../models/llama.collie", "--preset", "tiny", "--batch-size", "2", "--seq-len", "16",
                    "--steps", "2", "--warmup", "1", "--dtype", dtype);
            assertEquals(0, r.code(), r.err());
            JsonNode json = new ObjectMapper().readTree(r.out());
            for (String key : List.of("tokens_per_second", "tgs", "mfu", "peak_rss_bytes", "planned_peak_bytes",
                    "gemm_peak_gflops", "model_gflop_per_step")) {
                assertTrue(json.has(key) && json.get(key).asDouble() > 0, key + " in " + r.out());
            }
            assertEquals(dtype, json.get("dtype").asText());
            // the plan's runtime term beside what the process held outside Collie's tensors
            assertEquals(128L << 20, json.get("planned_runtime_bytes").asLong(), r.out());
            assertEquals(json.get("peak_rss_bytes").asLong() - json.get("peak_native_bytes").asLong(),
                    json.get("runtime_rss_bytes").asLong(), r.out());
            assertTrue(json.get("planned_peak_bytes").asLong() > json.get("planned_weights_bytes").asLong()
                    + json.get("planned_arena_bytes").asLong() + json.get("planned_runtime_bytes").asLong() - 1, r.out());
            // every timed step, in order; the reported step time is their median, for two steps their mean
            JsonNode each = json.get("step_seconds_each");
            assertEquals(2, each.size(), r.out());
            assertEquals((each.get(0).asDouble() + each.get(1).asDouble()) / 2, json.get("step_seconds").asDouble(), 0.0011,
                    r.out());
        }
    }

    @Test
    void benchLeavesOutTheFusionsItIsToldToAndRejectsOtherPasses() throws Exception {
        Result r = collie("bench", "../models/llama.collie", "--preset", "tiny", "--batch-size", "2", "--seq-len", "16",
                "--steps", "1", "--warmup", "0", "--disable-pass", "FuseWeightUpdate", "--disable-pass", "FuseRotaryAttention");
        assertEquals(0, r.code(), r.err());
        assertTrue(new ObjectMapper().readTree(r.out()).get("tokens_per_second").asDouble() > 0, r.out());
        Result bad = collie("bench", "../models/llama.collie", "--preset", "tiny", "--steps", "1", "--disable-pass",
                "ScheduleInPlaceUpdates");
        assertEquals(2, bad.code(), bad.err());
        assertTrue(bad.err().contains("--disable-pass ScheduleInPlaceUpdates: not a Fuse pass; they are [FuseHeadCrossEntropy"),
                bad.err());
    }

    @Test
    void explainPrintsTheIrAfterEachPassAndGraphDrawsDot() {
        Result e = colliec("explain", "../models/llama.collie", "--preset", "tiny");
        assertEquals(0, e.code(), e.err());
        for (String pass : List.of("BuildForwardGraph", "DifferentiateGraph", "ScheduleInPlaceUpdates",
                "EliminateDeadCode")) {
            assertTrue(e.out().contains("=== after " + pass), pass);
        }
        assertTrue(e.out().contains("param_update("));
        Result g = colliec("graph", "../samples/gpt2.collie", "--preset", "tiny", "--dot");
        assertEquals(0, g.code(), g.err());
        assertTrue(g.out().startsWith("digraph \"train\" {") && g.out().contains("->"));
    }
}
