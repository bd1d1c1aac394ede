package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class EmbeddingTest {

    @Property(tries = 50)
    void forwardCopiesTheRowOfEachId(@ForAll @IntRange(min = 1, max = 40) int n,
                                     @ForAll @IntRange(min = 1, max = 33) int C,
                                     @ForAll @IntRange(min = 1, max = 17) int V, @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] table = uniform(rnd, V * C, -1, 1);
        long[] ids = rnd.longs(n, 0, V).toArray();
        MemorySegment out = zeros(n * C);
        CpuKernels.embeddingForward(Tensors.ids(ids), segment(table), out, n, C, V);
        float[] got = floats(out, n * C);
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < C; c++) {
                assertEquals(table[(int) ids[i] * C + c], got[i * C + c], "out[" + i + "," + c + "]");
            }
        }
    }

    @Test
    void forwardRejectsIdsOutsideTheVocabularyBeforeWritingAnything() {
        int C = 3;
        int V = 5;
        MemorySegment table = segment(uniform(new Random(1), V * C, -1, 1));
        for (long bad : new long[] {V, -1, Long.MAX_VALUE}) {
            MemorySegment out = zeros(4 * C);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> CpuKernels.embeddingForward(ids(new long[] {0, 4, bad, 1}), table, out, 4, C, V));
            assertEquals("token id " + bad + " at position 2 is outside the vocabulary of 5", e.getMessage());
            assertArrayEquals(new float[4 * C], floats(out, 4 * C));
        }
    }

    @Property(tries = 50)
    void backwardAddsEachGradientRowToItsIdsRow(@ForAll @IntRange(min = 1, max = 40) int n,
                                                @ForAll @IntRange(min = 1, max = 33) int C,
                                                @ForAll @IntRange(min = 1, max = 7) int V, @ForAll long seed) {
        // Few vocabulary rows for many positions, so ids repeat and gradients must sum.
        Random rnd = new Random(seed);
        long[] ids = rnd.longs(n, 0, V).toArray();
        float[] dy = uniform(rnd, n * C, -1, 1);
        float[] prior = uniform(rnd, V * C, -1, 1);
        MemorySegment dtable = segment(prior);
        CpuKernels.embeddingBackward(Tensors.ids(ids), segment(dy), dtable, n, C);

        double[] expected = doubles(prior);
        double[] scale = new double[V * C];
        for (int i = 0; i < V * C; i++) {
            scale[i] = Math.abs(prior[i]);
        }
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < C; c++) {
                expected[(int) ids[i] * C + c] += dy[i * C + c];
                scale[(int) ids[i] * C + c] += Math.abs(dy[i * C + c]);
            }
        }
        assertCloseScaled(expected, scale, floats(dtable, V * C), 1e-6, 0, "dtable");
    }
}
