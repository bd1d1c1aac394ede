package dev.collie.runtime.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import org.junit.jupiter.api.Test;

class TrainingProgressTest {

    private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
    private final PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);

    private String text() {
        return buf.toString(StandardCharsets.UTF_8);
    }

    private static StepMetrics step(long step, double seconds) {
        return new StepMetrics(step, 100, 2.34561, 1e-3, 0.7, 4096, seconds, 1234.4, 1233.6,
                512L * 1024 * 1024, StepMetrics.TRAIN, Map.of());
    }

    @Test
    void quietModePrintsOnePlainLinePerStep() {
        try (TrainingProgress p = new TrainingProgress(100, true, out, 0)) {
            assertFalse(p.isBar());
            p.update(step(11, 1.0));
            p.update(step(12, 3.0));
        }
        String[] lines = text().split("\n");
        assertEquals(2, lines.length);
        // First step: mean 1 s, 89 left. Second: mean (1+3)/2 = 2 s, 88 left -> 176 s.
        assertEquals("step 11/100  loss 2.3456  lr 1.00e-03  tok/s 1234  tgs 1234  mem 512.0 MiB  eta 0:01:29", lines[0]);
        assertEquals("step 12/100  loss 2.3456  lr 1.00e-03  tok/s 1234  tgs 1234  mem 512.0 MiB  eta 0:02:56", lines[1]);
        assertFalse(text().contains("\r"), "plain mode must not emit carriage returns");
    }

    @Test
    void quietModeFormatsEvalGibAndUnknowns() {
        try (TrainingProgress p = new TrainingProgress(0, true, out, 0)) {
            p.update(new StepMetrics(3, 0, Double.NaN, 2e-5, Double.NaN, 10, 0.0, 10, 10,
                    3L * 1024 * 1024 * 1024 / 2, StepMetrics.TRAIN, Map.of()));
            p.update(TestData.eval(3, 1.5, 4.4817));
            p.log("checkpoint saved");
        }
        String[] lines = text().split("\n");
        assertEquals("step 3/?  loss ?  lr 2.00e-05  tok/s 10  tgs 10  mem 1.50 GiB  eta ?", lines[0]);
        assertEquals("eval step 3/?  loss 1.5000  perplexity 4.4817", lines[1]);
        assertEquals("checkpoint saved", lines[2]);
    }

    @Test
    void barModeOnNarrowTerminalKeepsBarAndLoss() {
        try (TrainingProgress p = new TrainingProgress(100, TrainingProgress.Display.BAR, out, 10, 80)) {
            p.update(step(12, 1.0));
        }
        String last = lastFrame(text());
        assertTrue(last.contains("loss 2.3456"), last);
        assertTrue(last.length() <= 80, last);
        // The bar (between the brackets) keeps a usable width instead of collapsing to one cell;
        // trailing fields are dropped instead.
        int open = last.indexOf('|');
        int close = last.indexOf('|', open + 1);
        assertTrue(close - open - 1 >= 10, last);
        assertFalse(last.contains("mem"), last);
    }

    private static String lastFrame(String s) {
        String t = s.stripTrailing();
        return t.substring(t.lastIndexOf('\r') + 1);
    }

    @Test
    void barModeShowsMetricsAndLogLines() {
        try (TrainingProgress p = new TrainingProgress(100, TrainingProgress.Display.BAR, out, 10, 160)) {
            assertTrue(p.isBar());
            p.update(step(12, 1.0));
            p.log("hello from log");
            p.update(TestData.eval(12, 1.25, 3.49));
        }
        String s = text();
        assertTrue(s.contains("loss 2.3456"), s);
        assertTrue(s.contains("12/100"), s);
        assertTrue(s.contains("lr 1.00e-03"), s);
        assertTrue(s.contains("tok/s 1234  tgs 1234  mem 512.0 MiB"), s);
        assertTrue(s.contains("\nhello from log\n") || s.contains("\rhello from log\n"), s);
        assertTrue(s.contains("eval step 12/100  loss 1.2500  perplexity 3.4900"), s);
        assertTrue(s.endsWith("\n"), "close() must end the bar line");
    }

    @Test
    void formatsHelpers() {
        assertEquals("0:00:00", TrainingProgress.formatDuration(0));
        assertEquals("27:46:40", TrainingProgress.formatDuration(100_000));
        assertEquals("1023.0 MiB", TrainingProgress.formatBytes(1023L * 1024 * 1024));
        assertEquals("1.00 GiB", TrainingProgress.formatBytes(1024L * 1024 * 1024));
        assertEquals("?", TrainingProgress.formatBytes(-1));
    }
}
