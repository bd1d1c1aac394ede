package dev.collie.compiler;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.collie.dsl.CollieException;
import dev.collie.dsl.Diagnostic;
import dev.collie.dsl.SourceFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

/**
 * Hostile `.collie` sources: mutated model files, token soup, deep nesting, huge literals, overflowing
 * shapes, self-reference, Unicode. Every input must end in success or positioned diagnostics, never
 * an exception and never a hang.
 */
class SourceFuzzTest {

    static final List<String> TOKENS = List.of("model", "hyper", "preset", "param", "block", "forward", "let", "loss",
            "output", "return", "require", "config", "parallel", "train", "if", "then", "else", "in", "as", "stored",
            "transposed", "int", "float", "bool", "{", "}", "(", ")", "[", "]", ":", "=", ",", "+", "-", "*", "/", "%",
            "->", "==", "&&", "!", ".", "x", "dim", "heads", "B", "T", "linear", "attention", "split", "0", "1", "7B",
            "1e-6", "9223372036854775807", "\"name.{i}\"", "\n", " ");

    static final String LLAMA = read("models/llama.collie");
    static final String GPT2 = read("samples/gpt2.collie");

    static String read(String p) {
        try {
            return Files.readString(Path.of("..", p));
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Runs the whole front end on {@code text}; only a CollieException with positions is acceptable. */
    static void check(String text) {
        SourceFile src = new SourceFile("fuzz.collie", text);
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            try {
                Compiler.checkAllPresets(Compiler.load(src));
            } catch (CollieException e) {
                assertTrue(!e.diagnostics().isEmpty());
                for (Diagnostic d : e.diagnostics()) {
                    assertTrue(d.span().file().equals("fuzz.collie") ? d.span().line() >= 1 : true, d.headline());
                    assertTrue(!d.message().isBlank());
                }
                e.render();
            } catch (Throwable t) {
                fail("unexpected " + t + " for input:\n" + text, t);
            }
        }, () -> "hang on input:\n" + text);
    }

    @Provide
    Arbitrary<String> mutatedModels() {
        return Arbitraries.longs().map(seed -> {
            Random r = new Random(seed);
            StringBuilder s = new StringBuilder(r.nextBoolean() ? LLAMA : GPT2);
            int edits = 1 + r.nextInt(4);
            for (int i = 0; i < edits; i++) {
                int at = r.nextInt(s.length());
                switch (r.nextInt(4)) {
                    case 0 -> s.deleteCharAt(at);
                    case 1 -> s.insert(at, TOKENS.get(r.nextInt(TOKENS.size())));
                    case 2 -> s.replace(at, Math.min(s.length(), at + 1 + r.nextInt(12)), "");
                    default -> s.setCharAt(at, (char) (32 + r.nextInt(95)));
                }
            }
            return s.toString();
        });
    }

    @Property(tries = 150)
    void mutatedModelFilesEndInDiagnosticsOrSuccess(@ForAll("mutatedModels") String text) {
        check(text);
    }

    @Property(tries = 150)
    void tokenSoupEndsInADiagnostic(@ForAll("soup") String text) {
        check(text);
    }

    @Provide
    Arbitrary<String> soup() {
        return Arbitraries.of(TOKENS).list().ofMinSize(1).ofMaxSize(60).map(l -> "model m\n" + String.join(" ", l));
    }

    @Test
    void pathologicalInputs() {
        String header = "model m\nhyper { dim: int = 8 }\n";
        String body = "\nforward(tokens: [B, T] int, labels: [B, T] int) {\n  loss cross_entropy(embedding(tokens, w), labels)\n}\n";
        check(header + "let x = " + "(".repeat(3000) + "1" + ")".repeat(3000));
        check(header + "let x = " + "1 + ".repeat(8000) + "1");
        check(header + "let x = " + "-".repeat(20000) + "1");
        check(header + "let x = 99999999999999999999999");
        check(header + "param w: [9223372036854775807, 9223372036854775807] = zeros as \"w\"" + body);
        check(header + "param w: [4611686018427387904, 2] = zeros as \"w\"" + body);
        check(header + "param w: [0 - 5, 8] = zeros as \"w\"" + body);
        check(header + "let a = b\nlet b = a");
        check("model m\nhyper { a: int = a }");
        check("model m\nhyper { größe: int = 8  θ: float = 1e4 }\nparam 重み: [größe, größe] = zeros as \"w\"" + body);
        check("model m\nhyper { x: float = 1e999 }");
        check("model m\n" + "block b { ".repeat(3000));
        check("\uFEFFmodel m");
        check("");
        check("model");
        check("model m\nhyper { dim: int = 8 }\nparam w: [dim, dim] = zeros as \"w\"\nforward(tokens: [B, T] int, labels: [B, T] int) {\n  let x = embedding(tokens, w)\n  loss cross_entropy(reshape(x, 0 - 1, 0 - 1), labels)\n}\n");
    }
}
