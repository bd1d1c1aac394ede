package dev.collie.runtime.cli;

import dev.collie.dsl.SourceFile;
import dev.collie.runtime.data.TokenizedDataset;
import dev.collie.runtime.exec.Session;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * `collie run` with no arguments: compiles the bundled models/llama.collie (preset tiny), makes a
 * deterministic synthetic task (continue an arithmetic progression modulo the vocabulary) and trains
 * it with in-place SGD, showing the loss fall. Needs no download.
 */
final class DemoRun {

    static final int STEPS = 60;
    static final int BATCH = 8;
    static final int LENGTH = 32;
    static final double LR = 0.05;

    private DemoRun() {}

    static SourceFile bundledLlama() {
        String home = System.getProperty("collie.home");
        if (home != null && Files.isRegularFile(Path.of(home, "models", "llama.collie"))) {
            return SourceFile.read(Path.of(home, "models", "llama.collie"));
        }
        try (InputStream in = DemoRun.class.getResourceAsStream("/models/llama.collie")) {
            return new SourceFile("models/llama.collie", new String(in.readAllBytes(), StandardCharsets.UTF_8));
        } catch (IOException | NullPointerException e) {
            throw new IllegalStateException("models/llama.collie is missing from the jar", e);
        }
    }

    /** Rows of a progression start, start+k, start+2k, ... (mod vocab), k in 1..3. */
    static List<TokenizedDataset.Row> progressions(int rows, int length, int vocab, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        var out = new ArrayList<TokenizedDataset.Row>();
        for (int r = 0; r < rows; r++) {
            long start = rng.nextInt(vocab);
            long k = 1 + rng.nextInt(3);
            long[] ids = new long[length];
            for (int t = 0; t < length; t++) {
                ids[t] = (start + k * t) % vocab;
            }
            out.add(new TokenizedDataset.Row(ids, ids.clone(), r + 1));
        }
        return out;
    }

    static int run(PrintWriter out) {
        return run(out, STEPS);
    }

    /** @return 0 when the loss fell */
    static int run(PrintWriter out, int steps) {
        Session.ModelSpec spec = new Session.ModelSpec(null, bundledLlama(), "tiny", Map.of());
        try (Session session = Session.open(spec, null, 0)) {
            int vocab = (int) session.vocabSize();
            List<TokenizedDataset.Row> rows = progressions(256, LENGTH, vocab, 7);
            out.printf("demo: model '%s' (%s), %,d parameters, random init; task: continue arithmetic progressions "
                    + "mod %d%n", session.plan().model(), session.plan().origin(), session.plan().parameterCount(), vocab);
            out.printf("training %d steps of in-place SGD, batch %d x %d tokens, lr %g%n", steps, BATCH, LENGTH, LR);
            int cursor = 0;
            double first = Double.NaN;
            double last = Double.NaN;
            for (int step = 1; step <= steps; step++) {
                List<TokenizedDataset.Row> part = new ArrayList<>();
                for (int i = 0; i < BATCH; i++) {
                    part.add(rows.get(cursor));
                    cursor = (cursor + 1) % rows.size();
                }
                try (TokenizedDataset.Batch batch = TokenizedDataset.batchOf(part)) {
                    last = session.trainStep(batch, LR, 1.0).loss();
                }
                if (step == 1) {
                    first = last;
                }
                if (step == 1 || step % 10 == 0) {
                    out.printf("step %3d  loss %.4f%n", step, last);
                    out.flush();
                }
            }
            out.printf("loss %.4f -> %.4f%n", first, last);
            return last < first ? 0 : 1;
        }
    }
}
