package dev.collie.runtime.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import dev.collie.compiler.ir.ParamInfo;
import dev.collie.runtime.checkpoint.SafetensorsFile;
import dev.collie.runtime.checkpoint.TensorInfo;
import dev.collie.runtime.exec.Session;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.file.Path;

/** The PyTorch golden fixtures (copied from the reference generator into test resources) and comparisons. */
public final class Fixtures {

    private Fixtures() {}

    public static Path fixture(String name) {
        try {
            return Path.of(Fixtures.class.getResource("/fixtures/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** One tensor of a safetensors file, as floats. */
    public static float[] read(Path file, String name) {
        try (SafetensorsFile f = SafetensorsFile.open(file); Arena arena = Arena.ofConfined()) {
            TensorInfo info = f.tensors().get(name);
            assertNotNull(info, name + " in " + file);
            MemorySegment seg = arena.allocate(info.numel() * 4, 64);
            f.readAsF32(name, seg);
            return seg.toArray(ValueLayout.JAVA_FLOAT);
        }
    }

    /** max |a - e| / max |e|: relative to the tensor's scale, so entries near zero do not dominate. */
    public static double relError(float[] actual, float[] expected) {
        assertEquals(expected.length, actual.length);
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < actual.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
            maxRef = Math.max(maxRef, Math.abs(expected[i]));
        }
        return maxDiff / Math.max(maxRef, 1e-30);
    }

    /** A parameter in checkpoint layout (transposed back where the model stores it transposed). */
    public static float[] stored(Session s, int index) {
        ParamInfo p = s.params().infos().get(index);
        float[] v = s.params().values(index);
        return p.storedTransposed() ? transpose(v, (int) p.shape().dim(0).coeff(), (int) p.shape().dim(1).coeff()) : v;
    }

    /** [rows, cols] -> [cols, rows]. */
    public static float[] transpose(float[] v, int rows, int cols) {
        float[] t = new float[v.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = v[r * cols + c];
            }
        }
        return t;
    }
}
