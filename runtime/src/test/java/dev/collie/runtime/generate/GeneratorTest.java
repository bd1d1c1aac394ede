package dev.collie.runtime.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.data.Batch;
import dev.collie.runtime.data.Example;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.tensor.Tensor;
import dev.collie.runtime.testing.Fixtures;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class GeneratorTest {

    /** Greedy decoding by recomputing the whole prefix with the eval program: the reference. */
    static long[] greedyByRecompute(Session s, long[] prompt, int n) {
        List<Long> seq = new ArrayList<>();
        for (long id : prompt) {
            seq.add(id);
        }
        long[] out = new long[n];
        for (int k = 0; k < n; k++) {
            long[] ids = seq.stream().mapToLong(Long::longValue).toArray();
            try (Batch b = Batch.ofExamples(List.of(new Example(ids, ids, 1)), 0)) {
                Map<String, Tensor> r = s.evaluate(b);
                Tensor logits = r.get("logits");
                int vocab = (int) logits.shape[2];
                float[] last = new float[vocab];
                for (int v = 0; v < vocab; v++) {
                    last[v] = logits.getFloat((long) (ids.length - 1) * vocab + v);
                }
                r.values().forEach(Tensor::free);
                out[k] = Sampling.greedy(1).pick(last, new SplittableRandom(0));
                seq.add(out[k]);
            }
        }
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"llama-tiny-a,../models/llama.collie", "gpt2-tiny-g,../samples/gpt2.collie"})
    void cachedDecodingEqualsRecomputingThePrefix(String fixture, String model) {
        try (Session s = Session.open(Session.ModelSpec.of(Path.of(model), null, Map.of()), Fixtures.fixture(fixture), 0);
             Generator g = new Generator(s.executor(), 32)) {
            long[] prompt = {5, 17, 3, 42, 8};
            List<Long> streamed = new ArrayList<>();
            long[] cached = g.generate(prompt, Sampling.greedy(10), OptionalLong.empty(), streamed::add);
            assertArrayEquals(greedyByRecompute(s, prompt, 10), cached);
            assertEquals(10, streamed.size());
            // a second prompt reuses the same caches
            long[] again = g.generate(new long[] {9, 9}, Sampling.greedy(4), OptionalLong.empty(), id -> { });
            assertArrayEquals(greedyByRecompute(s, new long[] {9, 9}, 4), again);
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"llama-tiny-a,../models/llama.collie"})
    void stopsAtEosAndSamplingIsSeeded(String fixture, String model) {
        try (Session s = Session.open(Session.ModelSpec.of(Path.of(model), null, Map.of()), Fixtures.fixture(fixture), 0);
             Generator g = new Generator(s.executor(), 40)) {
            long[] prompt = {1, 2, 3};
            long[] first = g.generate(prompt, Sampling.greedy(10), OptionalLong.empty(), id -> { });
            long[] stopped = g.generate(prompt, Sampling.greedy(10), OptionalLong.of(first[2]), id -> { });
            assertEquals(3, stopped.length, "stops right after the EOS id");
            Sampling hot = new Sampling(12, 1.5, 20, 0.95, 7);
            long[] a = g.generate(prompt, hot, OptionalLong.empty(), id -> { });
            long[] b = g.generate(prompt, hot, OptionalLong.empty(), id -> { });
            assertArrayEquals(a, b, "same seed, same tokens");
            long[] c = g.generate(prompt, new Sampling(12, 1.5, 20, 0.95, 8), OptionalLong.empty(), id -> { });
            assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(c), "another seed differs");
        }
    }

    @ParameterizedTest
    @CsvSource({"1", "3"})
    void topKOneIsGreedy(int k) {
        float[] logits = {0.1f, 2.5f, -1f, 2.4f};
        Sampling s = new Sampling(1, 1.0, k, 1.0, 3);
        SplittableRandom rng = new SplittableRandom(1);
        for (int i = 0; i < 50; i++) {
            int id = s.pick(logits, rng);
            assertTrue(k == 1 ? id == 1 : id == 1 || id == 3 || id == 0, "id " + id);
        }
    }
}
