package dev.collie.dsl.sema;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every setting of a training recipe, its type, default and allowed values. The same keys are
 * accepted in a `.collie` file's train section, in a run config file (JSON) and as CLI flags, so a
 * typo is caught the same way everywhere.
 */
public final class TrainSchema {

    public enum Type { INT, FLOAT, BOOL, STRING }

    public record Key(String name, Type type, Object defaultValue, List<String> allowed, String doc) {}

    private static final Map<String, Key> KEYS = new LinkedHashMap<>();

    private static void key(String name, Type type, Object dflt, String doc, String... allowed) {
        KEYS.put(name, new Key(name, type, dflt, List.of(allowed), doc));
    }

    static {
        key("optimizer", Type.STRING, "lomo", "update fused into the backward", "lomo", "adalomo");
        key("lr", Type.FLOAT, 1e-3, "peak learning rate");
        key("schedule", Type.STRING, "constant", "learning-rate schedule after warmup", "constant", "linear", "cosine");
        key("warmup_steps", Type.INT, 0L, "linear warmup from 0 to lr");
        key("min_lr", Type.FLOAT, 0.0, "learning rate that linear and cosine schedules end at");
        key("steps", Type.INT, 0L, "training steps (0: derived from epochs)");
        key("epochs", Type.INT, 1L, "passes over the training data when steps is 0");
        key("batch_size", Type.INT, 8L, "rows per step");
        key("max_length", Type.INT, 512L, "longest row in tokens; longer examples are truncated");
        key("clip_norm", Type.FLOAT, 0.0, "global gradient-norm clipping (0: off); costs a second backward");
        key("weight_decay", Type.FLOAT, 0.0, "decoupled weight decay");
        key("gradient_accumulation", Type.INT, 1L, "must be 1: in-place updates consume each gradient at once");
        key("seed", Type.INT, 0L, "seed for initialisation, shuffling and sampling");
        key("dtype", Type.STRING, "fp32", "weight storage: fp32, or bf16 (half the memory; fp32 compute; updates "
                + "with stochastic rounding so small steps are not lost)", "fp32", "bf16");
        key("activation_checkpointing", Type.STRING, "off", "off; full: keep only each block's input and recompute "
                + "the rest of the block before its backward (about a third more compute); selective: keep the "
                + "outputs of matrix products and attention too, recompute only the cheap ops", "off", "full",
                "selective");
        key("pack", Type.BOOL, false, "pack several examples into each row (attention stays within an example)");
        key("shuffle", Type.BOOL, true, "shuffle the training rows every epoch");
        key("eval_every", Type.INT, 0L, "evaluate every N steps (0: only at the end)");
        key("eval_fraction", Type.FLOAT, 0.0, "hold out this fraction of the training data for evaluation");
        key("eval_data", Type.STRING, "", "a separate JSONL file for evaluation");
        key("eval_prompts", Type.INT, 8L, "eval examples to generate answers for (exact match, samples)");
        key("save_every", Type.INT, 0L, "save a checkpoint every N steps (0: only at the end)");
        key("output", Type.STRING, "", "output folder for checkpoints, metrics and plots");
        key("data", Type.STRING, "", "training data (JSONL)");
        key("tokenizer", Type.STRING, "auto", "auto: the checkpoint's tokenizer.json, else bytes", "auto", "byte");
        key("max_new_tokens", Type.INT, 64L, "generation length limit");
        key("temperature", Type.FLOAT, 0.0, "0 is greedy");
        key("top_k", Type.INT, 0L, "0 keeps every token");
        key("top_p", Type.FLOAT, 1.0, "nucleus sampling mass");
        key("quiet", Type.BOOL, false, "plain log lines instead of a progress bar");
        key("threads", Type.INT, 0L, "kernel threads (0: all cores)");
        key("guard_nonfinite", Type.BOOL, false, "check the gradient norm before touching any weight and skip "
                + "steps whose loss or gradient is not finite (costs a second backward, like clip_norm)");
        key("max_bad_steps", Type.INT, 3L, "stop after this many consecutive skipped (non-finite) steps");
        key("memory_check", Type.BOOL, true, "before the first step, stop with an error if the training step's "
                + "planned peak memory exceeds what this machine has available");
        for (String role : List.of("system", "user", "assistant")) {
            key("chat." + role + "_prefix", Type.STRING, null, "chat template: text before a " + role + " turn");
            key("chat." + role + "_suffix", Type.STRING, null, "chat template: text after a " + role + " turn");
        }
    }

    private TrainSchema() {}

    public static Key get(String name) {
        return KEYS.get(name);
    }

    public static Map<String, Key> all() {
        return java.util.Collections.unmodifiableMap(KEYS);
    }

    /** Checks one value; returns an error message or null. Ints are accepted for floats. */
    public static String check(String name, Object value) {
        Key k = KEYS.get(name);
        if (k == null) {
            return "unknown train setting '" + name + "'" + ModelChecker.suggest(name, KEYS.keySet());
        }
        boolean ok = switch (k.type()) {
            case INT -> value instanceof Long;
            case FLOAT -> value instanceof Long || value instanceof Double;
            case BOOL -> value instanceof Boolean;
            case STRING -> value instanceof String;
        };
        if (!ok) {
            return "train setting '" + name + "' must be " + (k.type() == Type.INT ? "an int" : "a "
                    + k.type().name().toLowerCase()) + ", got " + value;
        }
        if (!k.allowed().isEmpty() && !k.allowed().contains(value)) {
            return "train setting '" + name + "' must be one of " + k.allowed() + ", got \"" + value + "\"";
        }
        return null;
    }

    /** Normalises a checked value: ints given for float keys become doubles. */
    public static Object normalise(String name, Object value) {
        return KEYS.get(name).type() == Type.FLOAT && value instanceof Long l ? (Object) l.doubleValue() : value;
    }
}
