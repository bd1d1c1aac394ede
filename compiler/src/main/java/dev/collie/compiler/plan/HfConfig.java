package dev.collie.compiler.plan;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.collie.dsl.CollieException;
import dev.collie.dsl.SourceFile;
import dev.collie.dsl.Span;
import dev.collie.dsl.ast.Decl;
import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.sema.HyperResolver;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads a Hugging Face config.json through a model file's `config { }` mapping. Each value keeps
 * the line and column of its key, so a value of the wrong type is reported in config.json itself.
 * Keys the file does not map are ignored; mapped keys that are absent or null leave the default.
 */
public final class HfConfig {

    private static final ObjectMapper JSON = new ObjectMapper();

    private HfConfig() {}

    /** The mapped values and the config text (to show the offending line when a value is rejected later). */
    public record Loaded(Map<String, HyperResolver.Override> values, SourceFile source) {}

    public static Loaded read(ModelFile model, Path configJson) {
        if (!Files.isRegularFile(configJson)) {
            throw CollieException.at(new Span(configJson.toString(), 0, 0, 0), "config file not found");
        }
        SourceFile source = SourceFile.read(configJson);
        Map<String, String> keyToHyper = new HashMap<>();
        for (Decl.ConfigKey c : model.config()) {
            keyToHyper.put(c.key(), c.hyper());
        }
        Map<String, HyperResolver.Override> out = new LinkedHashMap<>();
        try (JsonParser p = JSON.getFactory().createParser(source.text())) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw CollieException.at(new Span(source.name(), 1, 1, 1), "config.json must hold a JSON object")
                        .withSource(source);
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                var loc = p.currentTokenLocation();
                p.nextToken();
                JsonNode value = JSON.readTree(p);
                String hyper = keyToHyper.get(key);
                if (hyper == null || value == null || value.isNull()) {
                    continue;
                }
                Span at = new Span(source.name(), loc.getLineNr(), loc.getColumnNr(), key.length() + 2);
                Object java = switch (value.getNodeType()) {
                    case NUMBER -> value.isIntegralNumber() ? (Object) value.asLong() : (Object) value.asDouble();
                    case BOOLEAN -> value.asBoolean();
                    case STRING -> value.asText();
                    default -> throw CollieException.at(at, "\"" + key + "\" must be a number, bool or string for '"
                            + hyper + "', got " + value.getNodeType().name().toLowerCase()).withSource(source);
                };
                out.put(hyper, new HyperResolver.Override(java, at));
            }
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            throw CollieException.at(new Span(source.name(), loc == null ? 0 : loc.getLineNr(),
                    loc == null ? 0 : loc.getColumnNr(), 1), "invalid JSON: " + e.getOriginalMessage())
                    .withSource(source);
        } catch (IOException e) {
            throw CollieException.at(new Span(source.name(), 0, 0, 0), "cannot read: " + e.getMessage());
        }
        return new Loaded(out, source);
    }
}
