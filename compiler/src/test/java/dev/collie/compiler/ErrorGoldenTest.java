package dev.collie.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.collie.dsl.CollieException;
import dev.collie.dsl.SourceFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every file in samples/errors/ is a bad model; the diagnostic that `colliec check` prints for it is
 * pinned by the .expected file beside it. Run with -Dcollie.updateGoldens=true to rewrite them.
 */
class ErrorGoldenTest {

    static final Path DIR = Path.of("..", "samples", "errors");

    static Stream<String> samples() throws IOException {
        try (Stream<Path> files = Files.list(DIR)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".collie")).sorted().toList()
                    .stream();
        }
    }

    static String diagnose(String name) throws IOException {
        SourceFile source = new SourceFile("samples/errors/" + name, Files.readString(DIR.resolve(name)));
        try {
            Compiler.checkAllPresets(Compiler.load(source));
        } catch (CollieException e) {
            return e.render() + "\n";
        }
        return fail(name + " was accepted, but it is a sample of an error");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("samples")
    void diagnosticIsPinned(String name) throws IOException {
        String actual = diagnose(name);
        Path expected = DIR.resolve(name.replace(".collie", ".expected"));
        if (Boolean.getBoolean("collie.updateGoldens")) {
            Files.writeString(expected, actual);
        }
        assertTrue(Files.exists(expected), "missing " + expected);
        assertEquals(Files.readString(expected), actual);
        assertTrue(actual.startsWith("samples/errors/" + name + ":"), "diagnostic starts with file:line:col");
    }

    @Test
    void atLeastFifteenDistinctErrorsArePinned() throws IOException {
        List<String> names = samples().toList();
        assertTrue(names.size() >= 15, "only " + names.size() + " error samples");
        long distinct = names.stream().map(n -> {
            try {
                return diagnose(n).lines().findFirst().orElse("").replaceAll("^[^ ]* ", "");
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }).distinct().count();
        assertEquals(names.size(), distinct, "each sample shows a different message");
    }
}
