package dev.collie.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class PackerTest {

    private static final long X = Example.IGNORE;
    private static final int ID_STRIDE = 1000;

    /**
     * Examples whose ids say where they come from ({@code example * 1000 + position}), so a packed row
     * can be traced back; labels are a random mix of -100 and the id.
     */
    static List<Example> examples(List<Integer> lengths, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < lengths.size(); i++) {
            long[] ids = new long[lengths.get(i)];
            long[] labels = new long[ids.length];
            for (int t = 0; t < ids.length; t++) {
                ids[t] = (long) i * ID_STRIDE + t;
                labels[t] = rnd.nextBoolean() ? X : ids[t];
            }
            out.add(new Example(ids, labels, i + 1));
        }
        return out;
    }

    @Provide
    Arbitrary<List<Integer>> lengths() {
        return Arbitraries.integers().between(1, 90).list().ofMaxSize(60);
    }

    @Property
    void packedRowsKeepEveryExampleWholeInOrderWithRestartingPositions(
            @ForAll("lengths") List<Integer> lengths, @ForAll @IntRange(min = 1, max = 64) int maxLength,
            @ForAll long seed) {
        List<Example> examples = examples(lengths, seed);
        List<PackedRow> rows = Packer.pack(examples, maxLength);
        boolean[] seen = new boolean[examples.size()];
        long totalTokens = 0;
        for (PackedRow row : rows) {
            assertTrue(row.length() >= 1 && row.length() <= maxLength, "row length " + row.length());
            totalTokens += row.length();
            int previousExample = -1;
            int t = 0;
            long expectedSegment = 0;
            while (t < row.length()) {
                // A segment starts here: it must be one whole example (truncated to maxLength).
                int example = (int) (row.ids()[t] / ID_STRIDE);
                Example ex = examples.get(example);
                int len = Math.min(ex.length(), maxLength);
                assertTrue(example > previousExample, "examples in a row follow input order");
                assertTrue(!seen[example], "example " + example + " placed twice");
                seen[example] = true;
                previousExample = example;
                for (int k = 0; k < len; k++) {
                    assertEquals(ex.ids()[k], row.ids()[t + k], "tokens contiguous and in order");
                    assertEquals(k, row.positions()[t + k], "positions restart at each example");
                    assertEquals(expectedSegment, row.segments()[t + k], "segments number the examples 0, 1, 2...");
                    assertEquals(k == 0 ? X : ex.labels()[k], row.labels()[t + k],
                            "first label of each example masked, the rest unchanged");
                }
                expectedSegment++;
                t += len;
            }
        }
        for (int i = 0; i < seen.length; i++) {
            assertTrue(seen[i], "example " + i + " missing");
        }
        assertEquals(lengths.stream().mapToLong(l -> Math.min(l, maxLength)).sum(), totalTokens);
    }

    /** The segment tree must place exactly as the obvious quadratic first-fit does. */
    @Property
    void placementIsFirstFit(@ForAll("lengths") List<Integer> lengths, @ForAll @IntRange(min = 1, max = 64) int maxLength) {
        List<Example> examples = examples(lengths, 1);
        List<Integer> free = new ArrayList<>();
        List<List<Integer>> expected = new ArrayList<>();
        for (int i = 0; i < lengths.size(); i++) {
            int len = Math.min(lengths.get(i), maxLength);
            int r = 0;
            while (r < free.size() && free.get(r) < len) {
                r++;
            }
            if (r == free.size()) {
                free.add(maxLength);
                expected.add(new ArrayList<>());
            }
            free.set(r, free.get(r) - len);
            expected.get(r).add(i);
        }
        List<List<Integer>> actual = new ArrayList<>();
        for (PackedRow row : Packer.pack(examples, maxLength)) {
            List<Integer> members = new ArrayList<>();
            for (int t = 0; t < row.length(); t++) {
                if (row.positions()[t] == 0) {
                    members.add((int) (row.ids()[t] / ID_STRIDE));
                }
            }
            actual.add(members);
        }
        assertEquals(expected, actual);
    }

    @Test
    void laterExamplesFillGapsInEarlierRows() {
        List<PackedRow> rows = Packer.pack(examples(List.of(6, 6, 3, 4), 7), 10);
        assertEquals(2, rows.size());
        assertArrayEquals(new long[] {0, 0, 0, 0, 0, 0, 1, 1, 1}, rows.get(0).segments());
        assertArrayEquals(new long[] {0, 1, 2, 3, 4, 5, 0, 1, 2}, rows.get(0).positions());
        assertEquals(2 * ID_STRIDE, rows.get(0).ids()[6]); // example 2 after example 0
        assertEquals(3 * ID_STRIDE, rows.get(1).ids()[6]); // example 3 after example 1
        assertEquals(X, rows.get(0).labels()[6]);
        assertEquals(X, rows.get(1).labels()[6]);
    }

    @Test
    void oversizedExampleIsTruncatedIntoItsOwnRow() {
        List<PackedRow> rows = Packer.pack(examples(List.of(2, 15, 3), 3), 10);
        assertEquals(2, rows.size());
        assertEquals(10, rows.get(1).length());
        assertEquals(ID_STRIDE + 9, rows.get(1).ids()[9]);
        assertEquals(5, rows.get(0).length()); // examples 0 and 2 share the first row
    }

    @Test
    void packingNothingGivesNoRowsAndBadLengthIsRejected() {
        assertEquals(List.of(), Packer.pack(List.of(), 8));
        assertThrows(IllegalArgumentException.class, () -> Packer.pack(examples(List.of(1), 1), 0));
    }

    @Test
    void unpackedIsOneExamplePerRowWithLabelsUntouched() {
        Example ex = new Example(new long[] {5, 6, 7}, new long[] {5, 6, 7}, 1);
        List<PackedRow> rows = Packer.unpacked(List.of(ex, new Example(new long[] {8}, new long[] {X}, 2)));
        assertEquals(2, rows.size());
        assertArrayEquals(new long[] {5, 6, 7}, rows.get(0).ids());
        assertArrayEquals(new long[] {5, 6, 7}, rows.get(0).labels());
        assertArrayEquals(new long[] {0, 1, 2}, rows.get(0).positions());
        assertArrayEquals(new long[] {0, 0, 0}, rows.get(0).segments());
        assertArrayEquals(new long[] {8}, rows.get(1).ids());
    }
}
