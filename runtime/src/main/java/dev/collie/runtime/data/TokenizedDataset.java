package dev.collie.runtime.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.collie.runtime.tensor.Tensor;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Pre-tokenized JSONL: one {@code {"input_ids": [...], "labels": [...]}} per line, taken in file
 * order; labels are optional (then they equal the ids) and -100 marks a position the loss ignores.
 * Rows of a batch are right-padded to the longest with id 0 and label -100, which a causal model
 * never attends to from real positions.
 */
public final class TokenizedDataset {

    public static final long IGNORE = -100;

    public record Row(long[] ids, long[] labels, long line) {}

    /**
     * tokens, labels, positions and segments [B, T], owned by the caller. Padding has label -100,
     * position 0 and segment -1, so no real token attends to it.
     */
    public record Batch(Tensor tokens, Tensor labels, Tensor positions, Tensor segments, int rows)
            implements AutoCloseable {

        /** The program inputs a batch provides, by name. */
        public java.util.Map<String, Tensor> inputs() {
            return java.util.Map.of("tokens", tokens, "labels", labels, "positions", positions, "segments", segments);
        }

        @Override
        public void close() {
            tokens.free();
            labels.free();
            positions.free();
            segments.free();
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final List<Row> rows;
    private int cursor;

    private TokenizedDataset(Path file, List<Row> rows) {
        this.file = file;
        this.rows = rows;
    }

    /**
     * @param vocab ids must lie in [0, vocab); 0 skips the check
     * @param maxLength rows longer than this are an error (0 = no limit)
     */
    public static TokenizedDataset read(Path file, long vocab, long maxLength) {
        if (!Files.isRegularFile(file)) {
            throw new DataException(file, 0, Files.exists(file) ? "not a regular file" : "data file not found");
        }
        List<Row> rows = new ArrayList<>();
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            long number = 0;
            while ((line = in.readLine()) != null) {
                number++;
                if (line.isBlank()) {
                    continue;
                }
                rows.add(parse(file, number, line, vocab, maxLength));
            }
        } catch (CharacterCodingException e) {
            throw new DataException(file, 0, "not valid UTF-8");
        } catch (IOException e) {
            throw new DataException(file, 0, "cannot read: " + e.getMessage());
        }
        if (rows.isEmpty()) {
            throw new DataException(file, 0, "no rows: the file is empty");
        }
        return new TokenizedDataset(file, rows);
    }

    private static Row parse(Path file, long number, String line, long vocab, long maxLength) {
        JsonNode node;
        try {
            node = JSON.readTree(line);
        } catch (JsonProcessingException e) {
            throw new DataException(file, number, "invalid JSON: " + e.getOriginalMessage());
        }
        if (node == null || !node.isObject()) {
            throw new DataException(file, number, "each line must be a JSON object with \"input_ids\"");
        }
        long[] ids = ints(file, number, node, "input_ids", true);
        long[] labels = node.has("labels") ? ints(file, number, node, "labels", false) : ids.clone();
        if (ids.length == 0) {
            throw new DataException(file, number, "\"input_ids\" is empty");
        }
        if (labels.length != ids.length) {
            throw new DataException(file, number, "\"labels\" has " + labels.length + " entries, \"input_ids\" has "
                    + ids.length);
        }
        if (maxLength > 0 && ids.length > maxLength) {
            throw new DataException(file, number, "row has " + ids.length + " tokens, more than the model's context of "
                    + maxLength);
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || (vocab > 0 && ids[i] >= vocab)) {
                throw new DataException(file, number, "token id " + ids[i] + " at position " + i
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
            if (labels[i] != IGNORE && (labels[i] < 0 || (vocab > 0 && labels[i] >= vocab))) {
                throw new DataException(file, number, "label " + labels[i] + " at position " + i
                        + " is outside the vocabulary [0, " + vocab + ") and is not -100");
            }
        }
        return new Row(ids, labels, number);
    }

    private static long[] ints(Path file, long number, JsonNode node, String field, boolean required) {
        JsonNode a = node.get(field);
        if (a == null || a.isNull()) {
            throw new DataException(file, number, "missing \"" + field + "\"");
        }
        if (!a.isArray()) {
            throw new DataException(file, number, "\"" + field + "\" must be an array of integers");
        }
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = a.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToLong()) {
                throw new DataException(file, number, "\"" + field + "\"[" + i + "] is " + v + ", not an integer");
            }
            out[i] = v.asLong();
        }
        return out;
    }

    public int size() {
        return rows.size();
    }

    public Path file() {
        return file;
    }

    public List<Row> rows() {
        return rows;
    }

    public int cursor() {
        return cursor;
    }

    /** The next {@code b} rows in file order, wrapping around at the end. */
    public Batch next(int b) {
        List<Row> picked = new ArrayList<>(b);
        for (int i = 0; i < b; i++) {
            picked.add(rows.get(cursor));
            cursor = (cursor + 1) % rows.size();
        }
        return batchOf(picked);
    }

    public static Batch batchOf(List<Row> picked) {
        int t = picked.stream().mapToInt(r -> r.ids.length).max().orElse(1);
        int b = picked.size();
        long[] ids = new long[b * t];
        long[] labels = new long[b * t];
        long[] positions = new long[b * t];
        long[] segments = new long[b * t];
        java.util.Arrays.fill(labels, IGNORE);
        java.util.Arrays.fill(segments, -1);
        for (int r = 0; r < b; r++) {
            Row row = picked.get(r);
            System.arraycopy(row.ids, 0, ids, r * t, row.ids.length);
            System.arraycopy(row.labels, 0, labels, r * t, row.labels.length);
            for (int i = 0; i < row.ids.length; i++) {
                positions[r * t + i] = i;
                segments[r * t + i] = 0;
            }
        }
        return new Batch(Tensor.ofLongs(ids, b, t), Tensor.ofLongs(labels, b, t), Tensor.ofLongs(positions, b, t),
                Tensor.ofLongs(segments, b, t), b);
    }
}
