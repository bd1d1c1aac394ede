package dev.collie.dsl;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** The text of one `.collie` file and the name diagnostics print for it. */
public record SourceFile(String name, String text) {

    public static SourceFile read(Path path) {
        try {
            return new SourceFile(path.toString(), Files.readString(path, StandardCharsets.UTF_8));
        } catch (java.nio.charset.MalformedInputException e) {
            throw new CollieException(Diagnostic.error(new Span(path.toString(), 0, 0, 0), "file is not valid UTF-8"));
        } catch (IOException e) {
            throw new CollieException(Diagnostic.error(new Span(path.toString(), 0, 0, 0),
                    "cannot read file: " + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage())));
        }
    }

    /** Line {@code line} (1-based) without its terminator, or "" when out of range. */
    public String line(int line) {
        List<String> lines = text.lines().toList();
        return line >= 1 && line <= lines.size() ? lines.get(line - 1) : "";
    }
}
