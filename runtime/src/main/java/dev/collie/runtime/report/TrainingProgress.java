package dev.collie.runtime.report;

import java.io.Console;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Console progress of a training run.
 *
 * <p>On an interactive terminal a single progress bar is redrawn in place; otherwise (log files,
 * CI, {@code quiet}) every {@link #update} prints one self-contained line, because carriage-return
 * redraws turn into unreadable noise once captured to a file.
 *
 * <p>Thread-safe: the training loop and e.g. a checkpoint thread may both call {@link #log}.
 */
public final class TrainingProgress implements AutoCloseable {

    /** How progress is rendered. */
    public enum Display {
        /** Bar when the JVM is attached to an interactive terminal, plain lines otherwise. */
        AUTO,
        /** Always the redrawn progress bar. */
        BAR,
        /** Always one plain line per update. */
        PLAIN
    }

    private static final String FIELD_SEP = "  ";
    private static final int MIN_BAR_CELLS = 10;

    private final long totalSteps;
    private final PrintStream out;
    private final ProgressBar bar;                // null in plain mode
    private final RedrawingConsumer barConsumer;  // null in plain mode

    // ETA bookkeeping for plain mode (the bar computes its own ETA).
    private double trainSeconds;
    private long trainUpdates;
    private boolean closed;

    /**
     * @param totalSteps planned number of optimizer steps; {@code <= 0} if unknown
     * @param quiet      force plain one-line-per-step output even on a terminal
     * @param out        where to print (usually {@code System.err}, keeping stdout for results)
     * @param startStep  step the run starts after (0 for a fresh run, the checkpoint step when resuming)
     */
    public TrainingProgress(long totalSteps, boolean quiet, PrintStream out, long startStep) {
        this(totalSteps, quiet ? Display.PLAIN : Display.AUTO, out, startStep);
    }

    public TrainingProgress(long totalSteps, Display display, PrintStream out, long startStep) {
        this(totalSteps, display, out, startStep, 0);
    }

    /** @param barWidth fixed bar line width, or {@code <= 0} for the terminal's width (tests pin it) */
    TrainingProgress(long totalSteps, Display display, PrintStream out, long startStep, int barWidth) {
        this.totalSteps = totalSteps;
        this.out = Objects.requireNonNull(out, "out");
        boolean useBar = switch (Objects.requireNonNull(display, "display")) {
            case BAR -> true;
            case PLAIN -> false;
            case AUTO -> isInteractiveTerminal();
        };
        if (useBar) {
            barConsumer = new RedrawingConsumer(out, barWidth);
            bar = new ProgressBarBuilder()
                    .setTaskName("train")
                    .setInitialMax(totalSteps > 0 ? totalSteps : -1)
                    // No colour escapes: they corrupt the output when the terminal is tee'd to a file.
                    .setStyle(ProgressBarStyle.UNICODE_BLOCK)
                    .setConsumer(barConsumer)
                    // A resumed run starts part-way; this also makes the library's ETA use only
                    // the steps timed in this process.
                    .startsFrom(Math.max(0, startStep), Duration.ZERO)
                    .build();
        } else {
            barConsumer = null;
            bar = null;
        }
    }

    /**
     * True when the JVM talks to an interactive terminal. Since JDK 22 {@link System#console()}
     * returns a console even when the streams are redirected, so {@link Console#isTerminal()} is
     * what actually tells a terminal from a log file.
     */
    public static boolean isInteractiveTerminal() {
        Console console = System.console();
        return console != null && console.isTerminal();
    }

    /** Whether this instance renders the redrawn bar (false: plain lines). */
    public boolean isBar() {
        return bar != null;
    }

    /** Reports a finished train step or eval pass. */
    public synchronized void update(StepMetrics m) {
        Objects.requireNonNull(m, "m");
        if (closed) {
            return;
        }
        if (m.isEval()) {
            // Eval results are rare and worth keeping in scroll-back, so they are a line in both modes.
            log(evalLine(m));
            return;
        }
        if (m.seconds() > 0 && Double.isFinite(m.seconds())) {
            trainSeconds += m.seconds();
            trainUpdates++;
        }
        if (bar != null) {
            bar.setExtraMessage(fitBarMessage(barMessage(m)));
            bar.stepTo(m.step());
            // Render now instead of on the library's next 1 s tick: steps of large models take
            // longer than that and the bar would otherwise lag one step behind.
            bar.refresh();
        } else {
            out.println(plainLine(m));
            out.flush();
        }
    }

    /** Prints a message as its own line; in bar mode the bar is cleared first and redrawn below it. */
    public synchronized void log(String line) {
        if (barConsumer != null && !closed) {
            barConsumer.printAbove(line);
        } else {
            out.println(line);
            out.flush();
        }
    }

    /** Finishes the bar (leaves its final state on screen). Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (bar != null) {
            bar.close();
            // If close() races the library's first render, the library never closes the consumer
            // and the cursor would stay at the end of the bar line.
            barConsumer.close();
        }
        out.flush();
    }

    // ---- formatting -----------------------------------------------------------------------------

    String plainLine(StepMetrics m) {
        StringBuilder sb = new StringBuilder();
        sb.append("step ").append(m.step()).append('/').append(totalSteps > 0 ? Long.toString(totalSteps) : "?");
        sb.append("  loss ").append(fmt("%.4f", m.loss()));
        sb.append("  lr ").append(fmt("%.2e", m.lr()));
        sb.append("  tok/s ").append(fmt("%.0f", m.tokensPerSecond()));
        sb.append("  tgs ").append(fmt("%.0f", m.tokensPerDevicePerSecond()));
        sb.append("  mem ").append(formatBytes(m.memoryBytes()));
        sb.append("  eta ").append(eta(m.step()));
        appendExtra(sb, m.extra());
        return sb.toString();
    }

    private String evalLine(StepMetrics m) {
        StringBuilder sb = new StringBuilder();
        sb.append("eval step ").append(m.step()).append('/').append(totalSteps > 0 ? Long.toString(totalSteps) : "?");
        sb.append("  loss ").append(fmt("%.4f", m.loss()));
        appendExtra(sb, m.extra());
        return sb.toString();
    }

    /** Same fields as the plain line minus step and ETA, which the bar itself shows. */
    private static String barMessage(StepMetrics m) {
        return "loss " + fmt("%.4f", m.loss())
                + FIELD_SEP + "lr " + fmt("%.2e", m.lr())
                + FIELD_SEP + "tok/s " + fmt("%.0f", m.tokensPerSecond())
                + FIELD_SEP + "tgs " + fmt("%.0f", m.tokensPerDevicePerSecond())
                + FIELD_SEP + "mem " + formatBytes(m.memoryBytes());
    }

    /**
     * Drops trailing whole fields that do not fit. The library would otherwise squeeze the bar
     * itself down to one cell and then cut the message mid-number; keeping the bar and the
     * leading fields (loss first) is more useful on an 80-column terminal.
     */
    private String fitBarMessage(String message) {
        int width = barConsumer.getMaxRenderedLength();
        int ratio = 2 * Long.toString(Math.max(totalSteps, 1)).length() + 1;
        // Layout of the library's default renderer: "train 100% |" <bar> "| 12/100 (H:MM:SS / H:MM:SS) " <message>;
        // 21 allows two-digit hours on both durations.
        int reserved = "train 100% |".length() + "| ".length() + ratio + " (".length() + 21 + ") ".length();
        int budget = width - reserved - MIN_BAR_CELLS;
        String fitted = message;
        while (fitted.length() > budget) {
            int cut = fitted.lastIndexOf(FIELD_SEP);
            if (cut < 0) {
                break; // keep at least the loss; the library truncates it if really necessary
            }
            fitted = fitted.substring(0, cut);
        }
        return fitted;
    }

    private static void appendExtra(StringBuilder sb, Map<String, Double> extra) {
        extra.forEach((k, v) -> sb.append("  ").append(k).append(' ').append(fmt("%.4f", v)));
    }

    /** Mean measured step time times remaining steps; "?" until something is measured. */
    private String eta(long step) {
        if (totalSteps <= 0 || trainUpdates == 0) {
            return "?";
        }
        double mean = trainSeconds / trainUpdates;
        long remaining = Math.max(0, totalSteps - step);
        return formatDuration(Math.round(mean * remaining));
    }

    static String formatDuration(long seconds) {
        return String.format(Locale.ROOT, "%d:%02d:%02d", seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    }

    static String formatBytes(long bytes) {
        if (bytes < 0) {
            return "?";
        }
        double mib = bytes / (1024.0 * 1024.0);
        return mib < 1024 ? fmt("%.1f", mib) + " MiB" : fmt("%.2f", mib / 1024) + " GiB";
    }

    /** Locale-independent so logs parse the same everywhere; NaN/inf shown as "?" (unknown). */
    private static String fmt(String pattern, double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, pattern, v) : (Double.isNaN(v) ? "?" : Double.toString(v));
    }

    /**
     * Console consumer that remembers the last frame so a log line can be inserted above the bar.
     * All writes are serialized because the library renders from its own timer thread.
     */
    private static final class RedrawingConsumer extends ConsoleProgressBarConsumer {
        private final PrintStream out;
        private String lastFrame = "";
        private boolean closed;

        RedrawingConsumer(PrintStream out, int width) {
            super(out, width);
            this.out = out;
        }

        @Override
        public synchronized void accept(String rendered) {
            if (closed) {
                return;
            }
            lastFrame = rendered;
            super.accept(rendered);
            out.flush();
        }

        synchronized void printAbove(String line) {
            if (closed) {
                out.println(line);
                return;
            }
            // Blank the bar line, print the message in its place, then redraw the bar below it.
            out.print("\r" + " ".repeat(Math.max(0, getMaxRenderedLength())) + "\r");
            out.println(line);
            if (!lastFrame.isEmpty()) {
                super.accept(lastFrame);
            }
            out.flush();
        }

        @Override
        public synchronized void close() {
            if (closed) {
                return;
            }
            closed = true;
            super.close();
        }
    }
}
