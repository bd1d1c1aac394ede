package dev.collie.runtime.report;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Appends {@link StepMetrics} to {@code metrics.jsonl} (complete, machine-readable) and
 * {@code metrics.csv} (fixed columns for spreadsheets / pandas) in an output directory.
 *
 * <p>Every record is flushed immediately, so a crashed run keeps all steps it reported.
 * NaN values become JSON {@code null} and empty CSV cells, which both parse back as "missing".
 * Extra metrics not listed in {@code extraColumns} are kept in the JSONL file only.
 */
public final class MetricsWriter implements AutoCloseable {

    public static final String JSONL = "metrics.jsonl";
    public static final String CSV = "metrics.csv";

    /** Fixed CSV columns, before the caller's extra columns. */
    public static final List<String> CSV_COLUMNS = List.of(
            "step", "phase", "loss", "lr", "grad_norm", "tokens", "seconds",
            "tokens_per_second", "tgs", "memory_bytes");

    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final Path jsonlPath;
    private final Path csvPath;
    private final List<String> extraColumns;
    private final Writer jsonl;
    private final Writer csv;
    private boolean closed;

    private MetricsWriter(Path dir, List<String> extraColumns) throws IOException {
        this.jsonlPath = dir.resolve(JSONL);
        this.csvPath = dir.resolve(CSV);
        this.extraColumns = extraColumns;
        boolean csvHasHeader = Files.exists(csvPath) && Files.size(csvPath) > 0;
        this.jsonl = appender(jsonlPath);
        Writer c = null;
        try {
            c = appender(csvPath);
            if (!csvHasHeader) {
                try {
                    c.write(csvRecord(header(extraColumns)));
                    c.write('\n');
                    c.flush();
                } catch (IOException e) {
                    throw new OutputError(csvPath, e);
                }
            }
        } catch (IOException | RuntimeException e) {
            jsonl.close();
            if (c != null) {
                c.close();
            }
            throw e;
        }
        this.csv = c;
    }

    /**
     * Opens the metrics files in {@code dir} (created if missing).
     *
     * @param extraColumns   extra metric names that get their own CSV column, in this order
     * @param resumeFromStep 0 for a fresh run: existing files are replaced. {@code > 0} when resuming
     *                       from the checkpoint of that step: records with a larger step (logged
     *                       after the checkpoint by the crashed run, and about to be redone) are
     *                       dropped and new records are appended, so the files read as one run
     */
    public static MetricsWriter open(Path dir, List<String> extraColumns, long resumeFromStep) throws IOException {
        Objects.requireNonNull(dir, "dir");
        List<String> extras = List.copyOf(new LinkedHashSet<>(Objects.requireNonNull(extraColumns, "extraColumns")));
        for (String e : extras) {
            if (CSV_COLUMNS.contains(e)) {
                throw new IllegalArgumentException("extra column '" + e + "' clashes with a fixed column");
            }
        }
        Files.createDirectories(dir);
        Path jsonlPath = dir.resolve(JSONL);
        Path csvPath = dir.resolve(CSV);
        if (resumeFromStep > 0) {
            if (Files.exists(jsonlPath)) {
                truncateJsonl(jsonlPath, resumeFromStep);
            }
            if (Files.exists(csvPath)) {
                truncateCsv(csvPath, resumeFromStep, extras);
            }
        } else {
            Files.deleteIfExists(jsonlPath);
            Files.deleteIfExists(csvPath);
        }
        return new MetricsWriter(dir, extras);
    }

    public Path jsonlPath() {
        return jsonlPath;
    }

    public Path csvPath() {
        return csvPath;
    }

    /**
     * Appends one record to both files and flushes them.
     *
     * @throws OutputError if a file cannot be written (a full disk)
     */
    public synchronized void write(StepMetrics m) throws IOException {
        Objects.requireNonNull(m, "m");
        if (closed) {
            throw new IllegalStateException("MetricsWriter is closed");
        }
        try {
            jsonl.write(toJson(m));
            jsonl.write('\n');
            jsonl.flush();
        } catch (IOException e) {
            throw new OutputError(jsonlPath, e);
        }
        try {
            csv.write(csvRecord(csvRow(m, extraColumns)));
            csv.write('\n');
            csv.flush();
        } catch (IOException e) {
            throw new OutputError(csvPath, e);
        }
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            jsonl.close();
        } finally {
            csv.close();
        }
    }

    /**
     * Reads {@code metrics.jsonl} of {@code dir} back; an empty list if it does not exist.
     * A malformed last line is skipped (a crash can tear the final write); a malformed line
     * elsewhere means real corruption and is reported.
     */
    public static List<StepMetrics> read(Path dir) throws IOException {
        Path path = dir.resolve(JSONL);
        if (!Files.exists(path)) {
            return List.of();
        }
        List<String> lines = Files.readAllLines(path, StandardCharsets.UTF_8);
        int last = lastNonBlank(lines);
        List<StepMetrics> result = new ArrayList<>();
        for (int i = 0; i <= last; i++) {
            String line = lines.get(i);
            if (line.isBlank()) {
                continue;
            }
            try {
                result.add(fromJson(line));
            } catch (IOException | RuntimeException e) {
                if (i == last) {
                    break;
                }
                throw new IOException(path + ":" + (i + 1) + ": malformed metrics record", e);
            }
        }
        return result;
    }

    // ---- JSON -----------------------------------------------------------------------------------

    static String toJson(StepMetrics m) {
        ObjectNode o = MAPPER.createObjectNode();
        o.put("step", m.step());
        o.put("total_steps", m.totalSteps());
        o.put("phase", m.phase());
        putNumber(o, "loss", m.loss());
        putNumber(o, "lr", m.lr());
        putNumber(o, "grad_norm", m.gradNorm());
        o.put("tokens", m.tokens());
        putNumber(o, "seconds", m.seconds());
        putNumber(o, "tokens_per_second", m.tokensPerSecond());
        putNumber(o, "tokens_per_device_per_second", m.tokensPerDevicePerSecond());
        o.put("memory_bytes", m.memoryBytes());
        m.extra().forEach((k, v) -> putNumber(o, k, v));
        try {
            return MAPPER.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e); // cannot happen for a tree of numbers and strings
        }
    }

    /** Strict JSON has no NaN/Infinity; null is what pandas and jq understand as missing. */
    private static void putNumber(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) {
            o.put(key, v);
        } else {
            o.putNull(key);
        }
    }

    static StepMetrics fromJson(String line) throws IOException {
        JsonNode n = MAPPER.readTree(line);
        if (n == null || !n.isObject() || !n.hasNonNull("step")) {
            throw new IOException("not a metrics record: " + line);
        }
        Map<String, Double> extra = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : n.properties()) {
            if (!StepMetrics.FIELD_NAMES.contains(e.getKey())) {
                extra.put(e.getKey(), e.getValue().isNumber() ? e.getValue().doubleValue() : Double.NaN);
            }
        }
        return new StepMetrics(
                n.get("step").asLong(),
                n.path("total_steps").asLong(0),
                dbl(n, "loss"),
                dbl(n, "lr"),
                dbl(n, "grad_norm"),
                n.path("tokens").asLong(0),
                dbl(n, "seconds"),
                dbl(n, "tokens_per_second"),
                dbl(n, "tokens_per_device_per_second"),
                n.path("memory_bytes").asLong(-1),
                n.path("phase").asText(StepMetrics.TRAIN),
                extra);
    }

    private static double dbl(JsonNode n, String key) {
        JsonNode v = n.get(key);
        return v != null && v.isNumber() ? v.doubleValue() : Double.NaN;
    }

    // ---- CSV ------------------------------------------------------------------------------------

    private static List<String> header(List<String> extraColumns) {
        List<String> h = new ArrayList<>(CSV_COLUMNS);
        h.addAll(extraColumns);
        return h;
    }

    private static List<String> csvRow(StepMetrics m, List<String> extraColumns) {
        List<String> row = new ArrayList<>();
        row.add(Long.toString(m.step()));
        row.add(m.phase());
        row.add(cell(m.loss()));
        row.add(cell(m.lr()));
        row.add(cell(m.gradNorm()));
        row.add(Long.toString(m.tokens()));
        row.add(cell(m.seconds()));
        row.add(cell(m.tokensPerSecond()));
        row.add(cell(m.tokensPerDevicePerSecond()));
        row.add(Long.toString(m.memoryBytes()));
        for (String col : extraColumns) {
            Double v = m.extra().get(col);
            row.add(v == null ? "" : cell(v));
        }
        return row;
    }

    private static String cell(double v) {
        return Double.isFinite(v) ? Double.toString(v) : "";
    }

    /** One CSV record without the line terminator. */
    private static String csvRecord(List<String> cells) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < cells.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            String c = cells.get(i);
            if (c.indexOf(',') >= 0 || c.indexOf('"') >= 0 || c.indexOf('\n') >= 0 || c.indexOf('\r') >= 0) {
                sb.append('"').append(c.replace("\"", "\"\"")).append('"');
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    /** Splits one CSV line (RFC 4180 quoting, no embedded newlines: we never write any in cells). */
    static List<String> parseCsvLine(String line) {
        List<String> cells = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        boolean quoted = false;
        for (int i = 0; i < line.length(); i++) {
            char ch = line.charAt(i);
            if (quoted) {
                if (ch == '"') {
                    if (i + 1 < line.length() && line.charAt(i + 1) == '"') {
                        cur.append('"');
                        i++;
                    } else {
                        quoted = false;
                    }
                } else {
                    cur.append(ch);
                }
            } else if (ch == '"') {
                quoted = true;
            } else if (ch == ',') {
                cells.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(ch);
            }
        }
        cells.add(cur.toString());
        return cells;
    }

    // ---- resume ---------------------------------------------------------------------------------

    private static void truncateJsonl(Path path, long maxStep) throws IOException {
        List<String> kept = new ArrayList<>();
        for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
            if (line.isBlank()) {
                continue;
            }
            try {
                if (fromJson(line).step() <= maxStep) {
                    kept.add(line);
                }
            } catch (IOException | RuntimeException e) {
                // A torn line from the crash that made this a resume; dropping it is the point.
            }
        }
        writeLines(path, kept);
    }

    /**
     * Keeps rows with step <= maxStep. Cells are re-mapped by column name so a resumed run may
     * configure different extra columns than the original one without misaligning old rows.
     */
    private static void truncateCsv(Path path, long maxStep, List<String> extraColumns) throws IOException {
        List<String> lines = Files.readAllLines(path, StandardCharsets.UTF_8);
        List<String> newHeader = header(extraColumns);
        List<String> out = new ArrayList<>();
        out.add(csvRecord(newHeader));
        if (!lines.isEmpty()) {
            List<String> oldHeader = parseCsvLine(lines.getFirst());
            Map<String, Integer> oldIndex = new HashMap<>();
            for (int i = 0; i < oldHeader.size(); i++) {
                oldIndex.putIfAbsent(oldHeader.get(i), i);
            }
            Integer stepIdx = oldIndex.get("step");
            for (String line : lines.subList(1, lines.size())) {
                if (line.isBlank() || stepIdx == null) {
                    continue;
                }
                List<String> cells = parseCsvLine(line);
                if (cells.size() != oldHeader.size()) {
                    continue; // torn row
                }
                long step;
                try {
                    step = Long.parseLong(cells.get(stepIdx).trim());
                } catch (NumberFormatException e) {
                    continue;
                }
                if (step > maxStep) {
                    continue;
                }
                List<String> row = new ArrayList<>(newHeader.size());
                for (String col : newHeader) {
                    Integer i = oldIndex.get(col);
                    row.add(i == null ? "" : cells.get(i));
                }
                out.add(csvRecord(row));
            }
        }
        writeLines(path, out);
    }

    private static void writeLines(Path path, List<String> lines) throws IOException {
        AtomicFiles.write(path, os -> {
            for (String l : lines) {
                os.write(l.getBytes(StandardCharsets.UTF_8));
                os.write('\n');
            }
        });
    }

    private static Writer appender(Path path) throws IOException {
        return Files.newBufferedWriter(path, StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND, StandardOpenOption.WRITE);
    }

    private static int lastNonBlank(List<String> lines) {
        for (int i = lines.size() - 1; i >= 0; i--) {
            if (!lines.get(i).isBlank()) {
                return i;
            }
        }
        return -1;
    }
}
