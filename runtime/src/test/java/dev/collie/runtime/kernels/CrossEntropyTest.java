package dev.collie.runtime.kernels;

import static dev.collie.runtime.kernels.Tensors.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

class CrossEntropyTest {

    private static final long IGNORE = -100;

    @Provide
    Arbitrary<Integer> sizes() {
        return Arbitraries.of(1, 2, 3, 7, 17, 33, 65);
    }

    @Provide
    Arbitrary<Integer> smallRows() {
        return Arbitraries.of(1, 2, 3, 5);
    }

    @Provide
    Arbitrary<Integer> smallVocab() {
        return Arbitraries.of(1, 2, 3, 17, 33);
    }

    /** Mean over non-ignored rows of logsumexp(row) - row[target]; 0 when no row counts. */
    static double crossEntropy(double[] logits, long[] targets, int N, int V) {
        double total = 0;
        int count = 0;
        for (int r = 0; r < N; r++) {
            if (targets[r] == IGNORE) {
                continue;
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < V; c++) {
                max = Math.max(max, logits[r * V + c]);
            }
            double sum = 0;
            for (int c = 0; c < V; c++) {
                sum += Math.exp(logits[r * V + c] - max);
            }
            total += max + Math.log(sum) - logits[r * V + (int) targets[r]];
            count++;
        }
        return count == 0 ? 0 : total / count;
    }

    /** Targets in [0, V) with roughly a third of the rows ignored. */
    private static long[] targets(Random rnd, int N, int V) {
        long[] t = new long[N];
        for (int r = 0; r < N; r++) {
            t[r] = rnd.nextInt(3) == 0 ? IGNORE : rnd.nextInt(V);
        }
        return t;
    }

    @Property(tries = 60)
    void forwardMatchesReferenceAndSkipsIgnoredRows(@ForAll("sizes") int N, @ForAll("sizes") int V,
                                                    @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] logits = uniform(rnd, N * V, -4, 4);
        long[] t = targets(rnd, N, V);
        double loss = CpuKernels.crossEntropyForward(segment(logits), ids(t), N, V, IGNORE);
        double expected = crossEntropy(doubles(logits), t, N, V);
        assertEquals(expected, loss, 1e-9 * Math.max(1, Math.abs(expected)));
        assertEquals((int) java.util.Arrays.stream(t).filter(x -> x != IGNORE).count(),
                CpuKernels.countTargets(ids(t), N, IGNORE));
    }

    @Test
    void forwardIsStableForHugeLogits() {
        int N = 3;
        int V = 4;
        float[] logits = {5000, 4999, -3000, 0, -7000, -7001, -7002, -7003, 1, 2, 3, 4};
        long[] t = {1, 2, 3};
        double loss = CpuKernels.crossEntropyForward(segment(logits), ids(t), N, V, IGNORE);
        assertEquals(crossEntropy(doubles(logits), t, N, V), loss, 1e-9);
    }

    @Property(tries = 60)
    void backwardMatchesFiniteDifferences(@ForAll("smallRows") int N, @ForAll("smallVocab") int V,
                                          @ForAll long seed) {
        Random rnd = new Random(seed);
        float[] logits = uniform(rnd, N * V, -4, 4);
        long[] t = targets(rnd, N, V);
        float dloss = (float) (0.5 + rnd.nextDouble());
        // NaN everywhere first: every element, including ignored rows, must be written.
        float[] garbage = new float[N * V];
        java.util.Arrays.fill(garbage, Float.NaN);
        MemorySegment dlogits = segment(garbage);
        CpuKernels.crossEntropyBackward(segment(logits), ids(t), dlogits, N, V, IGNORE, dloss);

        double[] expected = numericGradient(doubles(logits), l -> dloss * crossEntropy(l, t, N, V));
        float[] got = floats(dlogits, N * V);
        assertClose(expected, got, 1e-5, 1e-7, "dlogits");
        for (int r = 0; r < N; r++) {
            if (t[r] == IGNORE) {
                for (int c = 0; c < V; c++) {
                    assertEquals(0f, got[r * V + c], "ignored row " + r);
                }
            }
        }
    }

    @Test
    void allRowsIgnoredGivesZeroLossAndZeroGradient() {
        int N = 3;
        int V = 5;
        float[] logits = uniform(new Random(5), N * V, -1, 1);
        long[] t = {IGNORE, IGNORE, IGNORE};
        assertEquals(0, CpuKernels.countTargets(ids(t), N, IGNORE));
        assertEquals(0.0, CpuKernels.crossEntropyForward(segment(logits), ids(t), N, V, IGNORE));
        MemorySegment dlogits = segment(uniform(new Random(6), N * V, -1, 1));
        CpuKernels.crossEntropyBackward(segment(logits), ids(t), dlogits, N, V, IGNORE, 1f);
        assertArrayEquals(new float[N * V], floats(dlogits, N * V));
    }

    @Test
    void customIgnoreIndexIsHonoured() {
        int V = 3;
        float[] logits = {1, 2, 3, 3, 2, 1};
        long[] t = {-1, 0};
        double loss = CpuKernels.crossEntropyForward(segment(logits), ids(t), 2, V, -1);
        assertEquals(Math.log(Math.exp(3) + Math.exp(2) + Math.exp(1)) - 3, loss, 1e-12);
        assertEquals(1, CpuKernels.countTargets(ids(t), 2, -1));
    }

    @Test
    void targetsOutsideTheVocabularyAreRejected() {
        int N = 4;
        int V = 5;
        MemorySegment logits = segment(new float[N * V]);
        for (long bad : new long[] {V, -1, 1L << 40}) {
            MemorySegment t = ids(new long[] {0, IGNORE, bad, 4});
            IllegalArgumentException forward = assertThrows(IllegalArgumentException.class,
                    () -> CpuKernels.crossEntropyForward(logits, t, N, V, IGNORE));
            assertTrue(forward.getMessage().contains("target " + bad + " at row 2"), forward.getMessage());
            IllegalArgumentException backward = assertThrows(IllegalArgumentException.class,
                    () -> CpuKernels.crossEntropyBackward(logits, t, zeros(N * V), N, V, IGNORE, 1f));
            assertEquals(forward.getMessage(), backward.getMessage());
        }
    }
}
