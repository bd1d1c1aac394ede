package dev.collie.runtime.data;

import dev.collie.runtime.tensor.Tensor;
import java.util.List;
import java.util.Map;

/**
 * One batch as program inputs: tokens, labels, positions and segments [B, T] (int64, off-heap,
 * owned by this object). Padding has label -100, position 0 and segment -1, so no real token
 * attends to it and the loss ignores it.
 */
public record Batch(Tensor tokens, Tensor labels, Tensor positions, Tensor segments, int rows)
        implements AutoCloseable {

    public static Batch of(Batches.BatchArrays a) {
        return new Batch(Tensor.ofLongs(a.ids(), a.b(), a.t()), Tensor.ofLongs(a.labels(), a.b(), a.t()),
                Tensor.ofLongs(a.positions(), a.b(), a.t()), Tensor.ofLongs(a.segments(), a.b(), a.t()), a.b());
    }

    /** Rows as they are (one example each), right-padded with {@code padId}. */
    public static Batch of(List<PackedRow> rows, long padId) {
        return of(new Batches.BatchRows(rows).toArrays(padId));
    }

    /** Unpacked examples, one per row. */
    public static Batch ofExamples(List<Example> examples, long padId) {
        return of(Packer.unpacked(examples), padId);
    }

    public long tokenCount() {
        return tokens.numel();
    }

    /** The program inputs a batch provides, by name. */
    public Map<String, Tensor> inputs() {
        return Map.of("tokens", tokens, "labels", labels, "positions", positions, "segments", segments);
    }

    @Override
    public void close() {
        tokens.free();
        labels.free();
        positions.free();
        segments.free();
    }
}
