package dev.collie.runtime.checkpoint;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Shared Jackson setup for every JSON file of a checkpoint. */
final class Json {

    /**
     * Strict on purpose: a duplicated tensor name or garbage after the object means the file was
     * produced by something broken, and silently taking one of the values would hide it.
     */
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    /** Same layout as Python's {@code json.dumps(indent=2)}, which Hugging Face uses for its JSON files. */
    private static final ObjectWriter PRETTY = MAPPER.writer(new DefaultPrettyPrinter()
            .withObjectIndenter(new DefaultIndenter("  ", "\n"))
            .withArrayIndenter(new DefaultIndenter("  ", "\n"))
            .withSeparators(Separators.createDefaultInstance()
                    .withObjectFieldValueSpacing(Separators.Spacing.AFTER)
                    .withObjectEmptySeparator("")
                    .withArrayEmptySeparator("")));

    private Json() {}

    /**
     * Parses a document that must be a JSON object. {@code file} names it in errors; {@code part}
     * says which part of the file the text is (e.g. "header"), or is null for the whole file.
     */
    static ObjectNode parseObject(Path file, String text, String part) {
        JsonNode node;
        try {
            node = MAPPER.readTree(text);
        } catch (JacksonException e) {
            String in = part == null ? "" : " in " + part;
            throw new CheckpointException(file, null, "invalid JSON" + in + position(e) + ": " + e.getOriginalMessage(), e);
        }
        if (!(node instanceof ObjectNode obj)) {
            throw new CheckpointException(file, (part == null ? "content" : part) + " is not a JSON object");
        }
        return obj;
    }

    /** Reads and parses a JSON object file, reporting I/O and syntax problems against that file. */
    static ObjectNode readObject(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new CheckpointException(file, null, "cannot read: " + CheckpointException.describe(e), e);
        }
        return parseObject(file, text, null);
    }

    /** Pretty JSON plus the trailing newline Hugging Face writes. */
    static byte[] pretty(JsonNode node) throws IOException {
        return (PRETTY.writeValueAsString(node) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    // Jackson's own message appends a multi-line source excerpt; users only need the position.
    private static String position(JacksonException e) {
        JsonLocation loc = e.getLocation();
        return loc == null ? "" : " at line " + loc.getLineNr() + ", column " + loc.getColumnNr();
    }
}
