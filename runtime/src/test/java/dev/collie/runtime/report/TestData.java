package dev.collie.runtime.report;

import java.util.Map;

final class TestData {
    private TestData() {
    }

    static StepMetrics train(long step, double loss) {
        return new StepMetrics(step, 100, loss, 1e-3, 0.5, 4096, 1.0, 4096.0, 1024.0,
                512L * 1024 * 1024, StepMetrics.TRAIN, Map.of());
    }

    static StepMetrics eval(long step, double loss, double ppl) {
        return new StepMetrics(step, 100, loss, Double.NaN, Double.NaN, 0, 0.0, Double.NaN, Double.NaN,
                -1, StepMetrics.EVAL, Map.of("perplexity", ppl));
    }
}
