package dev.collie.runtime.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** Renders the loss curve of a run to a PNG (train loss as a line, eval loss as markers). */
public final class LossPlot {

    public static final int WIDTH = 800;
    public static final int HEIGHT = 500;

    static {
        // Training runs on display-less servers; this must be set before any AWT class loads,
        // which is why it lives in the static initializer rather than in write().
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
    }

    private LossPlot() {
    }

    /**
     * Writes the chart to {@code png} atomically (a viewer refreshing the file never sees a
     * partial image). Records with a non-finite loss are skipped; an empty history still yields
     * a valid, empty chart so callers need no special case for the first plot.
     *
     * @throws OutputError if the file cannot be written (a full disk)
     */
    public static void write(Path png, List<StepMetrics> all) throws IOException {
        Objects.requireNonNull(png, "png");
        XYChart chart = chart(Objects.requireNonNull(all, "all"));
        byte[] bytes = BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG);
        AtomicFiles.write(png, out -> out.write(bytes));
    }

    static XYChart chart(List<StepMetrics> all) {
        XYChart chart = new XYChartBuilder()
                .width(WIDTH).height(HEIGHT)
                .title("Loss").xAxisTitle("step").yAxisTitle("loss")
                .build();
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
        chart.getStyler().setLegendVisible(true);
        // Steps are integers; the default pattern would label them "1,000.0" style.
        chart.getStyler().setXAxisDecimalPattern("#");

        List<StepMetrics> train = points(all, false);
        List<StepMetrics> eval = points(all, true);

        // XChart rejects empty series, so each series is only added when it has data.
        if (!train.isEmpty()) {
            XYSeries s = chart.addSeries("train", steps(train), losses(train));
            s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
            // A lone point would be invisible as a line; show it as a marker instead.
            s.setMarker(train.size() == 1 ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
            s.setLineColor(new Color(31, 119, 180));
            s.setMarkerColor(new Color(31, 119, 180));
            s.setLineStyle(new BasicStroke(1.5f));
        }
        if (!eval.isEmpty()) {
            XYSeries s = chart.addSeries("eval", steps(eval), losses(eval));
            s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Scatter);
            s.setMarker(SeriesMarkers.DIAMOND);
            s.setMarkerColor(new Color(214, 39, 40));
        }
        return chart;
    }

    private static List<StepMetrics> points(List<StepMetrics> all, boolean eval) {
        return all.stream()
                .filter(m -> m.phase().equals(eval ? StepMetrics.EVAL : StepMetrics.TRAIN) && Double.isFinite(m.loss()))
                .sorted(Comparator.comparingLong(StepMetrics::step))
                .toList();
    }

    private static double[] steps(List<StepMetrics> ms) {
        return ms.stream().mapToDouble(StepMetrics::step).toArray();
    }

    private static double[] losses(List<StepMetrics> ms) {
        return ms.stream().mapToDouble(StepMetrics::loss).toArray();
    }
}
