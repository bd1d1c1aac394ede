package dev.collie.runtime.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.compiler.ir.DType;
import dev.collie.runtime.checkpoint.Bf16;
import dev.collie.runtime.data.Batch;
import dev.collie.runtime.data.Example;
import dev.collie.runtime.exec.Session;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** bf16 weights with fp32 compute: stochastic rounding keeps small updates that round-to-nearest loses. */
class Bf16TrainingTest {

    @AfterEach
    void restore() {
        Bf16Updates.stochastic = true;
    }

    @Test
    void stochasticRoundingIsUnbiased() {
        float x = 1.0f + 1.0f / 1024; // a quarter of the way from 1.0 to the next bf16 value (1 + 1/128... /4)
        SplittableRandom rng = new SplittableRandom(5);
        double sum = 0;
        int n = 200_000;
        for (int i = 0; i < n; i++) {
            sum += Bf16.bf16ToF32(Bf16.f32ToBf16Stochastic(x, rng.nextInt()));
        }
        assertEquals(x, sum / n, 2e-5, "mean of stochastic roundings");
        assertEquals(1.0f, Bf16.bf16ToF32(Bf16.f32ToBf16RoundNearestEven(x)), "nearest drops it");
        assertEquals(Float.MAX_VALUE > 0, Float.isFinite(Bf16.bf16ToF32(Bf16.f32ToBf16Stochastic(3.3895314e38f, 0xFFFF))));
    }

    static List<Double> losses(DType weights, int steps, double lr) {
        List<Example> rows = new ArrayList<>();
        SplittableRandom rng = new SplittableRandom(3);
        for (int r = 0; r < 8; r++) {
            long start = rng.nextInt(200);
            long[] ids = new long[24];
            for (int t = 0; t < ids.length; t++) {
                ids[t] = (start + 3L * t) % 259;
            }
            rows.add(new Example(ids, ids, r + 1));
        }
        List<Double> out = new ArrayList<>();
        try (Session s = Session.open(new Session.ModelSpec(Path.of("../models/llama.collie"), null, "tiny",
                Map.of("vocab", "259")), null, 0, weights); Batch b = Batch.ofExamples(rows, 0)) {
            assertEquals(weights, s.params().storage());
            for (int i = 0; i < steps; i++) {
                out.add(s.trainStep(b, lr, null).loss());
            }
        }
        return out;
    }

    @Test
    void bf16WithStochasticRoundingLearnsLikeFp32WhereNearestStalls() {
        // Small steps: most updates are below half a bf16 unit of the weight they change.
        int steps = 40;
        double lr = 0.0005;
        List<Double> fp32 = losses(DType.F32, steps, lr);
        List<Double> sr = losses(DType.BF16, steps, lr);
        Bf16Updates.stochastic = false;
        List<Double> nearest = losses(DType.BF16, steps, lr);
        double drop32 = fp32.getFirst() - fp32.getLast();
        double dropSr = sr.getFirst() - sr.getLast();
        double dropNearest = nearest.getFirst() - nearest.getLast();
        String report = "fp32 " + fp32.getFirst() + " -> " + fp32.getLast() + ", bf16 stochastic " + sr.getLast()
                + ", bf16 nearest " + nearest.getLast();
        assertTrue(drop32 > 0.005, report);
        assertTrue(dropSr > 0.7 * drop32, "stochastic rounding keeps the updates: " + report);
        assertTrue(dropNearest < 0.3 * drop32, "round-to-nearest loses them: " + report);
    }
}
