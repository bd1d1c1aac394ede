package dev.collie.runtime.report;

import static dev.collie.runtime.report.TestData.eval;
import static dev.collie.runtime.report.TestData.train;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsWriterTest {

    private static final String HEADER =
            "step,phase,loss,lr,grad_norm,tokens,seconds,tokens_per_second,tgs,memory_bytes,perplexity,exact_match";

    @TempDir
    Path dir;

    private List<String> csv() throws IOException {
        return Files.readAllLines(dir.resolve(MetricsWriter.CSV));
    }

    @Test
    void writesJsonlAndCsvAndReadsBack() throws IOException {
        StepMetrics t1 = new StepMetrics(1, 10, 2.5, 1e-4, Double.NaN, 2048, 0.5, 4096, 512,
                1_000_000, StepMetrics.TRAIN, Map.of());
        StepMetrics e1 = new StepMetrics(1, 10, 2.25, Double.NaN, Double.NaN, 0, 0.25, Double.NaN, Double.NaN,
                -1, StepMetrics.EVAL, Map.of("perplexity", 9.4877, "bleu", 0.125));
        try (MetricsWriter w = MetricsWriter.open(dir, List.of("perplexity", "exact_match"), 0)) {
            w.write(t1);
            // Flushed per record: visible before close(), as after a crash.
            assertEquals(1, Files.readAllLines(w.jsonlPath()).size());
            assertEquals(2, Files.readAllLines(w.csvPath()).size());
            w.write(e1);
        }

        List<String> jsonl = Files.readAllLines(dir.resolve(MetricsWriter.JSONL));
        assertEquals(2, jsonl.size());
        JsonNode j0 = new ObjectMapper().readTree(jsonl.get(0));
        assertEquals(List.of("step", "total_steps", "phase", "loss", "lr", "grad_norm", "tokens", "seconds",
                        "tokens_per_second", "tokens_per_device_per_second", "memory_bytes"),
                iterToList(j0.fieldNames()));
        assertTrue(j0.get("grad_norm").isNull(), "NaN must be written as null");
        assertEquals(1e-4, j0.get("lr").doubleValue());
        assertEquals(512.0, j0.get("tokens_per_device_per_second").doubleValue());
        JsonNode j1 = new ObjectMapper().readTree(jsonl.get(1));
        assertEquals("eval", j1.get("phase").asText());
        assertEquals(9.4877, j1.get("perplexity").doubleValue(), "extra metrics are merged in");
        assertEquals(0.125, j1.get("bleu").doubleValue(), "extras without a CSV column still reach JSONL");

        assertEquals(List.of(
                HEADER,
                "1,train,2.5,1.0E-4,,2048,0.5,4096.0,512.0,1000000,,",
                "1,eval,2.25,,,0,0.25,,,-1,9.4877,"), csv());

        assertEquals(List.of(t1, e1), MetricsWriter.read(dir));
    }

    @Test
    void freshRunReplacesOldFiles() throws IOException {
        try (MetricsWriter w = MetricsWriter.open(dir, List.of(), 0)) {
            w.write(train(1, 3.0));
            w.write(train(2, 2.0));
        }
        try (MetricsWriter w = MetricsWriter.open(dir, List.of(), 0)) {
            w.write(train(1, 9.0));
        }
        assertEquals(List.of(train(1, 9.0)), MetricsWriter.read(dir));
        assertEquals(2, csv().size());
    }

    @Test
    void resumeKeepsStepsUpToCheckpointAndAppends() throws IOException {
        List<StepMetrics> first = new ArrayList<>();
        try (MetricsWriter w = MetricsWriter.open(dir, List.of("perplexity", "exact_match"), 0)) {
            for (int s = 1; s <= 10; s++) {
                first.add(train(s, 10.0 / s));
                w.write(first.getLast());
                if (s % 5 == 0) {
                    first.add(eval(s, 5.0 / s, Math.exp(5.0 / s)));
                    w.write(first.getLast());
                }
            }
        }
        // The crashed run tore its last write.
        Files.writeString(dir.resolve(MetricsWriter.JSONL), "{\"step\": 11, \"lo", StandardOpenOption.APPEND);
        Files.writeString(dir.resolve(MetricsWriter.CSV), "11,tra", StandardOpenOption.APPEND);

        List<StepMetrics> expected = new ArrayList<>(first.stream().filter(m -> m.step() <= 6).toList());
        try (MetricsWriter w = MetricsWriter.open(dir, List.of("perplexity", "exact_match"), 6)) {
            assertEquals(expected, MetricsWriter.read(dir), "steps > 6 dropped right at open");
            for (int s = 7; s <= 8; s++) {
                expected.add(train(s, 1.0 / s));
                w.write(expected.getLast());
            }
        }
        assertEquals(expected, MetricsWriter.read(dir));
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 5L, 6L, 7L, 8L),
                MetricsWriter.read(dir).stream().map(StepMetrics::step).toList());

        List<String> csv = csv();
        assertEquals(HEADER, csv.getFirst());
        assertEquals(1, csv.stream().filter(l -> l.startsWith("step,")).count(), "header written once");
        assertEquals(List.of("1", "2", "3", "4", "5", "5", "6", "7", "8"),
                csv.subList(1, csv.size()).stream().map(l -> l.substring(0, l.indexOf(','))).toList());
        assertTrue(csv.get(6).startsWith("5,eval,1.0,"), csv.get(6));
        assertTrue(csv.get(6).endsWith("," + Math.exp(1.0) + ","), csv.get(6));
        assertFalse(Files.list(dir).anyMatch(p -> p.getFileName().toString().endsWith(".tmp")), "temp files cleaned up");
    }

    @Test
    void resumeWithDifferentExtraColumnsRemapsCsvByName() throws IOException {
        try (MetricsWriter w = MetricsWriter.open(dir, List.of("perplexity", "exact_match"), 0)) {
            w.write(eval(2, 1.0, 2.5));
        }
        try (MetricsWriter w = MetricsWriter.open(dir, List.of("exact_match", "perplexity"), 2)) {
            w.write(eval(3, 1.0, 3.5));
        }
        List<String> csv = csv();
        assertEquals("step,phase,loss,lr,grad_norm,tokens,seconds,tokens_per_second,tgs,memory_bytes,exact_match,perplexity",
                csv.get(0));
        assertTrue(csv.get(1).endsWith(",,2.5"), csv.get(1));
        assertTrue(csv.get(2).endsWith(",,3.5"), csv.get(2));
    }

    @Test
    void resumeWithoutFilesStartsFresh() throws IOException {
        try (MetricsWriter w = MetricsWriter.open(dir.resolve("new"), List.of(), 40)) {
            w.write(train(41, 1.0));
        }
        assertEquals(List.of(train(41, 1.0)), MetricsWriter.read(dir.resolve("new")));
    }

    @Test
    void readFailsOnCorruptionInTheMiddle() throws IOException {
        Files.writeString(dir.resolve(MetricsWriter.JSONL),
                MetricsWriter.toJson(train(1, 1.0)) + "\nnot json\n" + MetricsWriter.toJson(train(2, 1.0)) + "\n",
                StandardCharsets.UTF_8);
        assertThrows(IOException.class, () -> MetricsWriter.read(dir));
        assertEquals(List.of(), MetricsWriter.read(dir.resolve("missing")));
    }

    @Test
    void rejectsExtrasClashingWithFixedFields() {
        assertThrows(IllegalArgumentException.class, () -> new StepMetrics(1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                StepMetrics.EVAL, Map.of("loss", 1.0)));
        assertThrows(IllegalArgumentException.class, () -> MetricsWriter.open(dir, List.of("tgs"), 0));
    }

    private static List<String> iterToList(java.util.Iterator<String> it) {
        List<String> l = new ArrayList<>();
        it.forEachRemaining(l::add);
        return l;
    }
}
