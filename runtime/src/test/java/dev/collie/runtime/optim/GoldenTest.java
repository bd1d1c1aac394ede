package dev.collie.runtime.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.collie.runtime.optim.OptimizerKernels.AdaLomoConfig;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Java kernels against PyTorch goldens: CoLLiE's AdaLomo hook body and LOMO with weight decay,
 * re-run in float32 by {@code src/test/python/adalomo_ref.py} for 3 steps on a 5x7 matrix, a
 * 13-vector (RMS(p) below eps2), a 1x9 matrix and a 64x48 matrix.
 */
class GoldenTest {
    private static final int STEPS = 3;
    /** Brief's bound on parameters. */
    private static final double PARAM_REL = 1e-5;
    /** The applied update is ~10% of p; 1e-4 of it is still far below any real bug. */
    private static final double DELTA_REL = 1e-4;
    /** Float32 rounding of p on both sides (torch rounds after the decay and after the add). */
    private static final int UPDATE_ULPS = 4;
    private static final double STATE_REL = 1e-5;
    /** Elements smaller than this fraction of the tensor's RMS are judged against it instead. */
    private static final double FLOOR = 1e-2;

    static Stream<Arguments> adalomoCases() {
        List<Arguments> out = new ArrayList<>();
        int params = Golden.load().ints("params/count")[0];
        for (String scenario : List.of("adalomo_default", "adalomo_clip_wd")) {
            for (int i = 0; i < params; i++) {
                out.add(Arguments.of(scenario, i));
            }
        }
        return out.stream();
    }

    static Stream<Arguments> lomoCases() {
        int params = Golden.load().ints("params/count")[0];
        return java.util.stream.IntStream.range(0, params).mapToObj(i -> Arguments.of("lomo_wd", i));
    }

    @ParameterizedTest(name = "{0} param {1}")
    @MethodSource("adalomoCases")
    void adalomoMatchesPyTorch(String scn, int param) {
        Golden gd = Golden.load();
        int[] shape = gd.ints("params/" + param + "/shape");
        int rows = shape[0];
        int cols = shape[1];
        boolean vector = cols == 0 || rows == 1;
        AdaLomoConfig cfg = new AdaLomoConfig(
                gd.scalar(scn + "/eps1"), gd.scalar(scn + "/eps2"), gd.scalar(scn + "/clipThreshold"),
                gd.scalar(scn + "/decayRate"), gd.scalar(scn + "/lossScale"), gd.scalar(scn + "/clipGradValue"));
        float wd = gd.scalar(scn + "/weightDecay");
        String key = scn + "/" + param;
        try (Arena arena = Arena.ofConfined()) {
            float[] p0 = gd.floats(key + "/p0");
            MemorySegment p = Segs.of(arena, p0);
            MemorySegment row = vector ? null : Segs.zeros(arena, rows);
            MemorySegment col = vector ? null : Segs.zeros(arena, cols);
            MemorySegment full = vector ? Segs.zeros(arena, p0.length) : null;
            float[] goldPrev = p0;
            for (int t = 1; t <= STEPS; t++) {
                float[] before = Segs.read(p);
                OptimizerKernels.adalomoUpdate(p, Segs.of(arena, gd.floats(key + "/g" + t)), rows, cols,
                        row, col, full, t, gd.scalar(scn + "/step" + t + "/lr"),
                        gd.scalar(scn + "/step" + t + "/scale"), wd, cfg);
                float[] after = Segs.read(p);
                float[] gold = gd.floats(key + "/p" + t);
                String at = key + " step " + t;
                Approx.assertRelClose(at + " p", after, gold, PARAM_REL, FLOOR);
                Approx.assertUpdateClose(at + " update", before, after, goldPrev, gold, DELTA_REL, UPDATE_ULPS);
                if (vector) {
                    // CoLLiE factors 1xm tensors; its column state is then the unfactored moment.
                    float[] v = gd.floats(key + (cols == 0 ? "/v" : "/col") + t);
                    Approx.assertRelClose(at + " v", Segs.read(full), v, STATE_REL, 0);
                } else {
                    Approx.assertRelClose(at + " row", Segs.read(row), gd.floats(key + "/row" + t), STATE_REL, 0);
                    Approx.assertRelClose(at + " col", Segs.read(col), gd.floats(key + "/col" + t), STATE_REL, 0);
                }
                goldPrev = gold;
            }
        }
    }

    @ParameterizedTest(name = "{0} param {1}")
    @MethodSource("lomoCases")
    void lomoWithWeightDecayMatchesPyTorch(String scn, int param) {
        Golden gd = Golden.load();
        float wd = gd.scalar(scn + "/weightDecay");
        String key = scn + "/" + param;
        try (Arena arena = Arena.ofConfined()) {
            float[] p0 = gd.floats(key + "/p0");
            MemorySegment p = Segs.of(arena, p0);
            float[] goldPrev = p0;
            for (int t = 1; t <= STEPS; t++) {
                float[] before = Segs.read(p);
                OptimizerKernels.lomoUpdate(p, Segs.of(arena, gd.floats(key + "/g" + t)), p0.length,
                        gd.scalar(scn + "/step" + t + "/lr"), gd.scalar(scn + "/step" + t + "/scale"), wd);
                float[] after = Segs.read(p);
                float[] gold = gd.floats(key + "/p" + t);
                String at = key + " step " + t;
                Approx.assertRelClose(at + " p", after, gold, PARAM_REL, FLOOR);
                Approx.assertUpdateClose(at + " update", before, after, goldPrev, gold, DELTA_REL, UPDATE_ULPS);
                goldPrev = gold;
            }
        }
    }

    @org.junit.jupiter.api.Test
    void goldenFileHasTheAgreedShapes() {
        Golden gd = Golden.load();
        assertEquals(4, gd.ints("params/count")[0]);
        assertEquals(List.of(5, 7), List.of(gd.ints("params/0/shape")[0], gd.ints("params/0/shape")[1]));
        assertEquals(List.of(13, 0), List.of(gd.ints("params/1/shape")[0], gd.ints("params/1/shape")[1]));
        assertEquals(List.of(1, 9), List.of(gd.ints("params/2/shape")[0], gd.ints("params/2/shape")[1]));
        assertEquals(List.of(64, 48), List.of(gd.ints("params/3/shape")[0], gd.ints("params/3/shape")[1]));
    }
}
