package dev.collie.runtime.report;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Metrics of one optimizer step ({@code phase = "train"}) or one evaluation pass
 * ({@code phase = "eval"}, reported at the step it ran after).
 *
 * @param step                      1-based global optimizer step (continues across resumes)
 * @param totalSteps                planned number of steps; {@code <= 0} if unknown
 * @param loss                      mean loss of the step / eval pass; NaN if unknown
 * @param lr                        learning rate used for the step; NaN if unknown
 * @param gradNorm                  global gradient norm before clipping; NaN if unknown
 * @param tokens                    tokens processed by this step (all devices)
 * @param seconds                   wall-clock seconds of this one step
 * @param tokensPerSecond           throughput of the whole job
 * @param tokensPerDevicePerSecond  TGS, CoLLiE's throughput metric (tokens / device / second)
 * @param memoryBytes               peak device memory of the step; negative if unknown
 * @param phase                     {@link #TRAIN} or {@link #EVAL}
 * @param extra                     further named metrics (e.g. {@code perplexity}, {@code exact_match});
 *                                  kept in insertion order so output columns are stable
 */
public record StepMetrics(
        long step,
        long totalSteps,
        double loss,
        double lr,
        double gradNorm,
        long tokens,
        double seconds,
        double tokensPerSecond,
        double tokensPerDevicePerSecond,
        long memoryBytes,
        String phase,
        Map<String, Double> extra) {

    public static final String TRAIN = "train";
    public static final String EVAL = "eval";

    /**
     * Snake-case names of the fixed fields as they appear in {@code metrics.jsonl}. Extra metrics
     * are merged into the same JSON object, so they must not reuse one of these names.
     */
    public static final List<String> FIELD_NAMES = List.of(
            "step", "total_steps", "phase", "loss", "lr", "grad_norm", "tokens", "seconds",
            "tokens_per_second", "tokens_per_device_per_second", "memory_bytes");

    public StepMetrics {
        Objects.requireNonNull(phase, "phase");
        LinkedHashMap<String, Double> copy = new LinkedHashMap<>();
        if (extra != null) {
            extra.forEach((k, v) -> {
                Objects.requireNonNull(k, "extra key");
                Objects.requireNonNull(v, () -> "extra value for " + k);
                // Rejected here rather than in the writer so a bad name fails on the first
                // eval, not silently overwrite a fixed field in the metrics file.
                if (FIELD_NAMES.contains(k)) {
                    throw new IllegalArgumentException("extra metric '" + k + "' clashes with a fixed field");
                }
                copy.put(k, v);
            });
        }
        extra = Collections.unmodifiableMap(copy);
    }

    public boolean isEval() {
        return EVAL.equals(phase);
    }
}
