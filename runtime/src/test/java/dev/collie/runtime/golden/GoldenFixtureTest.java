package dev.collie.runtime.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static dev.collie.runtime.testing.Fixtures.fixture;
import static dev.collie.runtime.testing.Fixtures.read;
import static dev.collie.runtime.testing.Fixtures.relError;
import static dev.collie.runtime.testing.Fixtures.stored;
import static dev.collie.runtime.testing.Fixtures.transpose;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.runtime.data.Batch;
import dev.collie.runtime.data.ChatTemplate;
import dev.collie.runtime.data.FormatOptions;
import dev.collie.runtime.data.JsonlExamples;
import dev.collie.runtime.tokenizer.Tokenizers;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.tensor.Tensor;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The golden-state test (llm.c style) against PyTorch: logits, loss, every gradient, parameters
 * after one SGD step and one clipped step, and a three-step loss trajectory, all through the code
 * path of `collie run` (Session: compile the .collie file with the checkpoint's config.json, load
 * the checkpoint, run the compiled programs).
 */
class GoldenFixtureTest {


    static Stream<Arguments> fixtures() {
        return Stream.of(Arguments.of("llama-tiny-a", "../models/llama.collie"),
                Arguments.of("gpt2-tiny-g", "../samples/gpt2.collie"));
    }

    static JsonNode expected(Path dir) throws Exception {
        return new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
    }

    static Session open(Path dir, String model) {
        return Session.open(Session.ModelSpec.of(Path.of(model), null, Map.of()), dir, 0);
    }

    /** The fixture's rows, pre-tokenized, as one batch (the data path of `collie run`). */
    static Batch batch(Path dir, Session s) {
        var examples = JsonlExamples.read(dir.resolve("batch.jsonl"), Tokenizers.byteLevel(), ChatTemplate.defaults(),
                new FormatOptions((int) s.vocabSize(), 1024, false));
        return Batch.ofExamples(examples, 0);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void logitsAndLossMatchPyTorch(String name, String model) throws Exception {
        Path dir = fixture(name);
        try (Session s = open(dir, model); Batch b = batch(dir, s)) {
            Map<String, Tensor> out = s.evaluate(b);
            try {
                double err = relError(out.get("logits").toFloatArray(), read(dir.resolve("expected_logits.safetensors"),
                        "logits"));
                assertTrue(err < 1e-4, "logits rel error " + err);
                double loss = out.get("loss").item();
                double want = expected(dir).get("loss").asDouble();
                assertEquals(want, loss, 1e-5 * Math.abs(want), "loss");
            } finally {
                out.values().forEach(Tensor::free);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void everyGradientAndOneStepMatchPyTorch(String name, String model) throws Exception {
        Path dir = fixture(name);
        JsonNode exp = expected(dir);
        try (Session s = open(dir, model); Batch b = batch(dir, s)) {
            Map<Integer, float[]> grads = new HashMap<>();
            s.executor().setGradientListener((g, index) -> grads.put(index, g.toFloatArray()));
            s.trainStep(b, exp.get("lr").asDouble(), null);
            assertEquals(s.params().infos().size(), grads.size(), "one gradient per parameter");
            for (int i = 0; i < s.params().infos().size(); i++) {
                ParamInfo p = s.params().infos().get(i);
                float[] g = grads.get(i);
                if (p.storedTransposed()) {
                    g = transpose(g, (int) p.shape().dim(0).coeff(), (int) p.shape().dim(1).coeff());
                }
                double err = relError(g, read(dir.resolve("expected_grads.safetensors"), p.checkpointName()));
                assertTrue(err < 1e-4, "gradient of " + p.checkpointName() + " rel error " + err);
                double perr = relError(stored(s, i), read(dir.resolve("expected_after_sgd1.safetensors"),
                        p.checkpointName()));
                assertTrue(perr < 1e-5, p.checkpointName() + " after one SGD step: rel error " + perr);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void clippedStepMatchesPyTorch(String name, String model) throws Exception {
        Path dir = fixture(name);
        JsonNode exp = expected(dir);
        try (Session s = open(dir, model); Batch b = batch(dir, s)) {
            Session.StepResult r = s.trainStep(b, exp.get("lr").asDouble(), exp.get("clip_max_norm").asDouble());
            double norm = exp.get("grad_global_norm").asDouble();
            assertEquals(norm, r.gradNorm(), 1e-5 * norm, "global gradient norm");
            for (int i = 0; i < s.params().infos().size(); i++) {
                String ckpt = s.params().infos().get(i).checkpointName();
                double err = relError(stored(s, i), read(dir.resolve("expected_after_clipped_sgd1.safetensors"), ckpt));
                assertTrue(err < 1e-5, ckpt + " after a clipped step: rel error " + err);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void threeStepTrajectoryMatchesPyTorch(String name, String model) throws Exception {
        Path dir = fixture(name);
        JsonNode exp = expected(dir);
        JsonNode traj = exp.get("loss_trajectory_sgd_3_steps");
        try (Session s = open(dir, model); Batch b = batch(dir, s)) {
            for (int k = 0; k < 3; k++) {
                double loss = s.trainStep(b, exp.get("lr").asDouble(), null).loss();
                double want = traj.get(k).asDouble();
                assertEquals(want, loss, 1e-4 * Math.abs(want), "loss before step " + (k + 1));
            }
            Map<String, Tensor> out = s.evaluate(b);
            try {
                double want = traj.get(3).asDouble();
                assertEquals(want, out.get("loss").item(), 1e-4 * Math.abs(want), "loss after step 3");
            } finally {
                out.values().forEach(Tensor::free);
            }
        }
    }
}
