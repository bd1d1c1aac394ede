package dev.collie.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading failures: each must be a one-line message that names the file or directory. */
class TokenizersTest {

    @TempDir Path dir;

    @Test
    void missingTokenizerJsonNamesTheDirectory() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> Tokenizers.load(dir));
        assertOneLine(e.getMessage());
        assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());

        Path nowhere = dir.resolve("nowhere");
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.load(nowhere));
        assertTrue(e.getMessage().contains(nowhere.toString()), e.getMessage());
    }

    @Test
    void jsonSyntaxErrorIsOneLineNamingTheFile() throws IOException {
        Path file = write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}}}");
        TokenizerException e = assertThrows(TokenizerException.class, () -> Tokenizers.load(dir));
        assertOneLine(e.getMessage());
        assertTrue(e.getMessage().startsWith(file + ": error: "), e.getMessage());
        assertEquals(file, e.file());
        assertTrue(e.getMessage().contains("line 1"), e.getMessage());
    }

    @Test
    void tokenizerErrorFromTheNativeLibraryIsOneLineNamingTheFile() throws IOException {
        // Well-formed JSON that the Rust tokenizers library rejects.
        Path file = write("tokenizer.json", """
                {
                  "added_tokens": [],
                  "model": {"type": "NoSuchModel", "vocab": {"a": 0}}
                }
                """);
        TokenizerException e = assertThrows(TokenizerException.class, () -> Tokenizers.load(dir));
        assertOneLine(e.getMessage());
        assertTrue(e.getMessage().startsWith(file + ": error: "), e.getMessage());
        assertTrue(e.getMessage().length() > (file + ": error: ").length() + 5, e.getMessage());
    }

    @Test
    void emptyVocabularyIsRejected() throws IOException {
        Path file = write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
        TokenizerException e = assertThrows(TokenizerException.class, () -> Tokenizers.load(dir));
        assertTrue(e.getMessage().startsWith(file + ": error: "), e.getMessage());
    }

    @Test
    void malformedTokenizerConfigNamesThatFile() throws IOException {
        write("tokenizer.json", """
                {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}
                """);
        Path config = write("tokenizer_config.json", "{\"bos_token\": ");
        TokenizerException e = assertThrows(TokenizerException.class, () -> Tokenizers.load(dir));
        assertOneLine(e.getMessage());
        assertTrue(e.getMessage().startsWith(config + ": error: "), e.getMessage());
    }

    @Test
    void specialTokenNotInVocabularyFallsBackToConfigJson() throws IOException {
        write("tokenizer.json", """
                {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},
                 "added_tokens": [{"id": 5, "content": "<eos>", "single_word": false, "lstrip": false,
                                   "rstrip": false, "normalized": false, "special": true}]}
                """);
        write("tokenizer_config.json", "{\"bos_token\": \"<missing>\", \"eos_token\": \"<eos>\"}");
        write("config.json", "{\"bos_token_id\": 1, \"eos_token_id\": [0, 1]}");
        try (HfTokenizer t = Tokenizers.load(dir)) {
            assertEquals(1, t.bosId().getAsLong());
            assertEquals(5, t.eosId().getAsLong()); // the added token, not config.json's first
            assertTrue(t.padId().isEmpty());
            assertEquals(6, t.vocabSize()); // largest id (an added token) + 1
            assertArrayEquals(new long[] {0, 1}, t.encode("ab", false));
        }
    }

    private Path write(String name, String content) throws IOException {
        return Files.writeString(dir.resolve(name), content);
    }

    private static void assertOneLine(String message) {
        assertFalse(message.contains("\n") || message.contains("\r"), message);
    }
}
