package dev.collie.runtime.train;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.collie.compiler.cli.CliSupport;
import dev.collie.dsl.CollieException;
import dev.collie.dsl.SourceFile;
import dev.collie.dsl.Span;
import dev.collie.dsl.sema.TrainSchema;
import dev.collie.runtime.report.OutputError;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * The resolved training recipe. Each key of {@link TrainSchema} takes, lowest first: its default,
 * the model file's train section, a run config file (JSON, nested groups like "chat": {...}), then
 * command-line flags. The result is written beside a run's outputs as settings.json.
 */
public final class TrainSettings {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Map<String, Object> values;

    private TrainSettings(Map<String, Object> values) {
        this.values = values;
    }

    public static TrainSettings resolve(Map<String, Object> fromModel, Path runConfig, Map<String, Object> fromCli) {
        Map<String, Object> v = new LinkedHashMap<>();
        TrainSchema.all().forEach((k, key) -> v.put(k, key.defaultValue()));
        v.putAll(fromModel);
        if (runConfig != null) {
            v.putAll(readRunConfig(runConfig));
        }
        fromCli.forEach((k, value) -> {
            String problem = TrainSchema.check(k, value);
            if (problem != null) {
                throw new CliSupport.UsageError(problem);
            }
            v.put(k, TrainSchema.normalise(k, value));
        });
        TrainSettings s = new TrainSettings(v);
        s.validate();
        return s;
    }

    /** Settings from JSON; a wrong key or value is reported at its line and column in the file. */
    static Map<String, Object> readRunConfig(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new CliSupport.UsageError("--run-config " + file + ": no such file");
        }
        SourceFile source = SourceFile.read(file);
        Map<String, Object> out = new LinkedHashMap<>();
        try (JsonParser p = JSON.getFactory().createParser(source.text())) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw CollieException.at(new Span(source.name(), 1, 1, 1), "a run config is a JSON object")
                        .withSource(source);
            }
            readObject(p, "", out, source);
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            throw CollieException.at(new Span(source.name(), loc == null ? 1 : loc.getLineNr(),
                    loc == null ? 1 : loc.getColumnNr(), 1), "invalid JSON: " + e.getOriginalMessage()).withSource(source);
        } catch (IOException e) {
            throw new CliSupport.UsageError("cannot read " + file + ": " + e.getMessage());
        }
        return out;
    }

    private static void readObject(JsonParser p, String prefix, Map<String, Object> out, SourceFile source)
            throws IOException {
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String key = prefix + p.currentName();
            var loc = p.currentTokenLocation();
            Span at = new Span(source.name(), loc.getLineNr(), loc.getColumnNr(), key.length() + 2);
            JsonToken t = p.nextToken();
            if (t == JsonToken.START_OBJECT) {
                readObject(p, key + ".", out, source);
                continue;
            }
            JsonNode node = JSON.readTree(p);
            Object value = node.isIntegralNumber() ? (Object) node.asLong() : node.isNumber() ? (Object) node.asDouble()
                    : node.isBoolean() ? (Object) node.asBoolean() : node.isTextual() ? node.asText() : node.toString();
            String problem = TrainSchema.check(key, value);
            if (problem != null) {
                throw CollieException.at(at, problem).withSource(source);
            }
            out.put(key, TrainSchema.normalise(key, value));
        }
    }

    private void validate() {
        if (integer("gradient_accumulation") != 1) {
            throw new CliSupport.UsageError("gradient accumulation cannot be combined with in-place updates: each "
                    + "gradient is applied and freed the moment it is complete, so there is nothing to accumulate "
                    + "into. Use a larger batch_size, or pack: true to put more tokens in each row.");
        }
        for (String k : new String[] {"batch_size", "max_length", "epochs"}) {
            if (integer(k) < 1) {
                throw new CliSupport.UsageError(k + " must be at least 1, got " + integer(k));
            }
        }
        for (String k : new String[] {"steps", "warmup_steps", "eval_every", "save_every", "eval_prompts",
                "max_new_tokens", "top_k", "threads", "max_bad_steps"}) {
            if (integer(k) < 0) {
                throw new CliSupport.UsageError(k + " must not be negative, got " + integer(k));
            }
        }
        if (!(real("lr") > 0) || real("min_lr") < 0 || real("clip_norm") < 0 || real("weight_decay") < 0
                || real("temperature") < 0) {
            throw new CliSupport.UsageError("lr must be positive; min_lr, clip_norm, weight_decay and temperature "
                    + "must not be negative");
        }
        double f = real("eval_fraction");
        if (f < 0 || f >= 1) {
            throw new CliSupport.UsageError("eval_fraction must be in [0, 1), got " + f);
        }
        double topP = real("top_p");
        if (!(topP > 0 && topP <= 1)) {
            throw new CliSupport.UsageError("top_p must be in (0, 1], got " + topP);
        }
    }

    public Object get(String key) {
        if (!values.containsKey(key)) {
            throw new IllegalArgumentException("no train setting " + key);
        }
        return values.get(key);
    }

    public String string(String key) {
        Object v = get(key);
        return v == null ? null : v.toString();
    }

    public long integer(String key) {
        return ((Number) get(key)).longValue();
    }

    public double real(String key) {
        return ((Number) get(key)).doubleValue();
    }

    public boolean bool(String key) {
        return (Boolean) get(key);
    }

    /** The chat template keys that are set, without the "chat." prefix. */
    public Map<String, String> chat() {
        Map<String, String> out = new LinkedHashMap<>();
        values.forEach((k, v) -> {
            if (k.startsWith("chat.") && v != null) {
                out.put(k.substring(5), v.toString());
            }
        });
        return out;
    }

    public Map<String, Object> asMap() {
        return java.util.Collections.unmodifiableMap(values);
    }

    /** settings.json: every resolved setting, sorted, so two runs can be compared with diff. */
    public void write(Path file) throws IOException {
        Map<String, Object> sorted = new TreeMap<>();
        values.forEach((k, v) -> {
            if (v != null) {
                sorted.put(k, v);
            }
        });
        Files.createDirectories(file.toAbsolutePath().getParent());
        Path tmp = file.resolveSibling("." + file.getFileName() + ".tmp");
        try {
            JSON.writeValue(tmp.toFile(), sorted);
        } catch (IOException e) {
            Files.deleteIfExists(tmp);
            throw new OutputError(file, e);
        }
        Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
}
