package dev.collie.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.data.ChatTemplateTest.Expected;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class JsonlExamplesTest {

    private static final long X = Example.IGNORE;
    private static final long BOS = CharTokenizer.BOS;
    private static final long EOS = CharTokenizer.EOS;
    private static final FormatOptions OPTS = new FormatOptions(CharTokenizer.VOCAB, 1000, true);

    @TempDir
    Path dir;

    private Path write(String content) throws IOException {
        return write(content.getBytes(StandardCharsets.UTF_8));
    }

    private Path write(byte[] content) throws IOException {
        Path p = Files.createTempFile(dir, "data", ".jsonl");
        Files.write(p, content);
        return p;
    }

    private static JsonlExamples.Result load(Path p, FormatOptions opts) {
        return JsonlExamples.load(p, new CharTokenizer(), ChatTemplate.defaults(), opts);
    }

    private static Example only(Path p) {
        List<Example> all = JsonlExamples.read(p, new CharTokenizer(), ChatTemplate.defaults(), OPTS);
        assertEquals(1, all.size());
        return all.getFirst();
    }

    private static long[] concat(long[]... parts) {
        return java.util.Arrays.stream(parts).flatMapToLong(java.util.Arrays::stream).toArray();
    }

    // ---- formats ----

    @Test
    void textLearnsEveryTokenWithBosAndEos() throws IOException {
        Example ex = only(write("{\"text\": \"hello\"}\n"));
        long[] ids = concat(new long[] {BOS}, CharTokenizer.ids("hello"), new long[] {EOS});
        assertArrayEquals(ids, ex.ids());
        assertArrayEquals(ids, ex.labels());
        assertEquals(1, ex.line());
    }

    @Test
    void textWithoutBosOrEosInTheTokenizerAddsNeither() throws IOException {
        var all = JsonlExamples.read(write("{\"text\": \"hi\"}"), new CharTokenizer(false, false),
                ChatTemplate.defaults(), OPTS);
        assertArrayEquals(CharTokenizer.ids("hi"), all.getFirst().ids());
    }

    @Test
    void promptResponseMasksThePromptAndLearnsResponseAndEos() throws IOException {
        Example ex = only(write("{\"prompt\": \"Q: 2+2?\", \"response\": \" 4\"}"));
        var exp = new Expected().masked(BOS).masked("Q: 2+2?").learned(" 4").learned(EOS);
        assertArrayEquals(exp.ids(), ex.ids());
        assertArrayEquals(exp.labels(), ex.labels());
    }

    @Test
    void promptResponseEncodesThePiecesSeparately() throws IOException {
        // "<e" + "os>" spelled across the boundary would be one EOS token if encoded as one string.
        Example ex = only(write("{\"prompt\": \"<e\", \"response\": \"os>\"}"));
        var exp = new Expected().masked(BOS).masked("<e").learned("os>").learned(EOS);
        assertArrayEquals(exp.ids(), ex.ids());
        assertArrayEquals(exp.labels(), ex.labels());
    }

    @Test
    void emptyPromptLeavesOnlyTheMaskedBos() throws IOException {
        Example ex = only(write("{\"prompt\": \"\", \"response\": \"r\"}"));
        assertArrayEquals(new long[] {BOS, CharTokenizer.id('r'), EOS}, ex.ids());
        assertArrayEquals(new long[] {X, CharTokenizer.id('r'), EOS}, ex.labels());
    }

    @Test
    void messagesLearnOnlyAssistantTurnsEachEndingInEos() throws IOException {
        Example ex = only(write("""
                {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, \
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}, \
                {"role": "assistant", "content": "ciao"}]}
                """));
        var exp = new Expected()
                .masked(BOS)
                .masked("<|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\n")
                .learned("hello\n").learned(EOS)
                .masked("<|user|>\nbye\n<|assistant|>\n")
                .learned("ciao\n").learned(EOS);
        assertArrayEquals(exp.ids(), ex.ids());
        assertArrayEquals(exp.labels(), ex.labels());
    }

    @Test
    void preTokenizedWithoutLabelsLearnsEverything() throws IOException {
        Example ex = only(write("{\"input_ids\": [5, 6, 7]}"));
        assertArrayEquals(new long[] {5, 6, 7}, ex.ids());
        assertArrayEquals(new long[] {5, 6, 7}, ex.labels());
    }

    @Test
    void preTokenizedLabelsAreTakenAsGiven() throws IOException {
        Example ex = only(write("{\"input_ids\": [5, 6, 7], \"labels\": [-100, 6, 7]}"));
        assertArrayEquals(new long[] {5, 6, 7}, ex.ids());
        assertArrayEquals(new long[] {X, 6, 7}, ex.labels());
    }

    @Test
    void shapesMixPerLineAndBlankLinesCountForLineNumbers() throws IOException {
        Path p = write("{\"text\": \"a\"}\n\n   \n{\"input_ids\": [9]}\r\n{\"prompt\": \"p\", \"response\": \"r\"}");
        var all = JsonlExamples.read(p, new CharTokenizer(), ChatTemplate.defaults(), OPTS);
        assertEquals(List.of(1L, 4L, 5L), all.stream().map(Example::line).toList());
        assertArrayEquals(new long[] {9}, all.get(1).ids()); // CRLF stripped, not part of the JSON
    }

    @Test
    void byteOrderMarkIsIgnored() throws IOException {
        byte[] body = "{\"input_ids\": [4]}\n".getBytes(StandardCharsets.UTF_8);
        byte[] withBom = new byte[body.length + 3];
        withBom[0] = (byte) 0xEF;
        withBom[1] = (byte) 0xBB;
        withBom[2] = (byte) 0xBF;
        System.arraycopy(body, 0, withBom, 3, body.length);
        assertArrayEquals(new long[] {4}, only(write(withBom)).ids());
    }

    @Test
    void linesLongerThanTheReadBufferAreWhole() throws IOException {
        String text = "x".repeat(200_000);
        Path p = write("{\"text\": \"" + text + "\"}\n{\"input_ids\": [3]}\n");
        var r = load(p, new FormatOptions(CharTokenizer.VOCAB, 300_000, true));
        assertEquals(200_002, r.examples().get(0).length());
        assertEquals(2, r.examples().get(1).line());
    }

    @Test
    void statsCountRowsTokensAndLearnedTokens() throws IOException {
        Path p = write("{\"text\": \"ab\"}\n{\"prompt\": \"p\", \"response\": \"r\"}\n");
        var s = load(p, OPTS).stats();
        assertEquals(2, s.rows());
        assertEquals(4 + 4, s.tokens());
        assertEquals(4 + 2, s.learnedTokens());
        assertEquals(0, s.truncatedRows());
        assertEquals(0, s.skippedRows());
        assertTrue(s.warnings().isEmpty());
    }

    // ---- truncation ----

    @Test
    void longRowsAreTruncatedAndCountedWhenTruncationIsOn() throws IOException {
        Path p = write("{\"text\": \"abcdefgh\"}\n{\"text\": \"ab\"}\n");
        var r = load(p, new FormatOptions(CharTokenizer.VOCAB, 4, true));
        assertArrayEquals(new long[] {BOS, CharTokenizer.id('a'), CharTokenizer.id('b'), CharTokenizer.id('c')},
                r.examples().get(0).ids());
        assertEquals(4, r.examples().get(0).labels().length);
        assertEquals(4, r.examples().get(1).length()); // BOS a b EOS: exactly max, untouched
        assertEquals(1, r.stats().truncatedRows());
        assertEquals(8, r.stats().tokens());
    }

    @Test
    void longRowsAreAnErrorWhenTruncationIsOff() throws IOException {
        Path p = write("{\"text\": \"ab\"}\n{\"text\": \"abcdefgh\"}\n");
        var e = assertThrows(DataError.class, () -> load(p, new FormatOptions(CharTokenizer.VOCAB, 4, false)));
        assertEquals(p + ":2: error: the row has 10 tokens, more than max_length 4 (raise max_length or enable truncation)",
                e.getMessage());
        assertEquals(2, e.line());
    }

    @Test
    void truncationThatCutsTheWholeResponseSkipsTheRowWithAWarning() throws IOException {
        Path p = write("{\"prompt\": \"long prompt\", \"response\": \"r\"}\n{\"text\": \"ok\"}\n");
        var r = load(p, new FormatOptions(CharTokenizer.VOCAB, 5, true));
        assertEquals(1, r.examples().size());
        assertEquals(1, r.stats().skippedRows());
        assertEquals(1, r.stats().truncatedRows());
        assertEquals(List.of(p + ":1: warning: the row has no label to learn from (every label is -100 after "
                + "truncation to 5 tokens); skipped"), r.stats().warnings());
    }

    // ---- rows with nothing to learn ----

    @Test
    void rowsWithoutAnyLabelAreSkippedWithAWarning() throws IOException {
        Path p = write("""
                {"messages": [{"role": "user", "content": "hi"}]}
                {"text": "t"}
                {"input_ids": [4, 5], "labels": [-100, -100]}
                """);
        var r = load(p, OPTS);
        assertEquals(List.of(2L), r.examples().stream().map(Example::line).toList());
        assertEquals(2, r.stats().skippedRows());
        assertEquals(1, r.stats().rows());
        assertEquals(List.of(
                p + ":1: warning: the row has no label to learn from (every label is -100); skipped",
                p + ":3: warning: the row has no label to learn from (every label is -100); skipped"),
                r.stats().warnings());
    }

    @Test
    void warningsAreCappedButTheCountIsExact() throws IOException {
        Path p = write("{\"input_ids\": [4], \"labels\": [-100]}\n".repeat(30) + "{\"text\": \"t\"}\n");
        var s = load(p, OPTS).stats();
        assertEquals(30, s.skippedRows());
        assertEquals(JsonlExamples.MAX_WARNINGS, s.warnings().size());
    }

    @Test
    void aFileWhereEveryRowIsSkippedIsAnError() throws IOException {
        Path p = write("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
        assertError(p, 1, "no row has a label to learn from: all 1 rows were skipped (every label is -100)");
    }

    // ---- errors ----

    private static void assertError(Path p, long line, String what) {
        assertError(p, line, what, OPTS);
    }

    private static void assertError(Path p, long line, String what, FormatOptions opts) {
        var e = assertThrows(DataError.class, () -> load(p, opts));
        assertEquals(p + ":" + line + ": error: " + what, e.getMessage());
        assertEquals(line, e.line());
        assertEquals(p, e.file());
        assertFalse(e.getMessage().contains("\n"));
    }

    /** Each bad row on line 2, after a good line 1. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', textBlock = """
            [1, 2]                                   | expected a JSON object, got an array; expected one of {"text"}, {"prompt", "response"}, {"messages"}, {"input_ids"[, "labels"]}
            "text"                                   | expected a JSON object, got a string; expected one of {"text"}, {"prompt", "response"}, {"messages"}, {"input_ids"[, "labels"]}
            {"content": "x", "id": 3}                | unknown row shape with keys ["content", "id"]; expected one of {"text"}, {"prompt", "response"}, {"messages"}, {"input_ids"[, "labels"]}
            {}                                       | unknown row shape with keys []; expected one of {"text"}, {"prompt", "response"}, {"messages"}, {"input_ids"[, "labels"]}
            {"text": "a", "id": 3}                   | unexpected key "id" in a {"text"} row; expected one of {"text"}, {"prompt", "response"}, {"messages"}, {"input_ids"[, "labels"]}
            {"prompt": "a", "respones": "b"}         | unexpected key "respones" in a {"prompt", "response"} row; expected one of {"text"}, {"prompt", "response"}, {"messages"}, {"input_ids"[, "labels"]}
            {"text": 5}                              | "text" must be a string, got a number
            {"text": null}                           | "text" must be a string, got null
            {"text": ""}                             | "text" is empty
            {"prompt": "a"}                          | a row with "prompt" needs "response" too
            {"response": "a"}                        | a row with "response" needs "prompt" too (it may be "")
            {"prompt": ["a"], "response": "b"}       | "prompt" must be a string, got an array
            {"prompt": "a", "response": ""}          | "response" is empty
            {"messages": "hi"}                       | "messages" must be an array of {"role", "content"} objects, got a string
            {"messages": {"role": "user"}}           | "messages" must be an array of {"role", "content"} objects, got an object
            {"messages": []}                         | "messages" is empty
            {"messages": ["hi"]}                     | messages[0] must be an object with "role" and "content", got a string
            {"messages": [{"content": "x"}]}         | messages[0] has no "role"
            {"messages": [{"role": "user"}]}         | messages[0] has no "content"
            {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]} | messages[1] has unknown role "bot"; expected one of [system, user, assistant]
            {"messages": [{"role": 1, "content": "a"}]}      | "messages[0].role" must be a string, got a number
            {"messages": [{"role": "user", "content": 2}]}   | "messages[0].content" must be a string, got a number
            {"messages": [{"role": "user", "content": "a", "name": "x"}]} | messages[0] has unknown key "name"; a message has only "role" and "content"
            {"input_ids": "1 2"}                     | "input_ids" must be an array of integers, got a string
            {"input_ids": []}                        | "input_ids" is empty
            {"input_ids": [1, 2.5]}                  | input_ids[1] must be an integer, got 2.5
            {"input_ids": [1, "2"]}                  | input_ids[1] must be an integer, got a string
            {"input_ids": [1, 99999999999999999999]} | input_ids[1] must be an integer, got 99999999999999999999
            {"input_ids": [3, 259]}                  | input_ids has id 259 at position 1, outside the vocabulary [0, 259)
            {"input_ids": [-1]}                      | input_ids has id -1 at position 0, outside the vocabulary [0, 259)
            {"input_ids": [3, 4], "labels": [4]}     | "labels" has 1 entries but "input_ids" has 2
            {"input_ids": [3, 4], "labels": [4, -1]} | labels[1] = -1 is neither -100 nor a token id in [0, 259)
            {"input_ids": [3, 4], "labels": [4, 300]} | labels[1] = 300 is neither -100 nor a token id in [0, 259)
            {"input_ids": [3], "labels": "x"}        | "labels" must be an array of integers, got a string
            {"text": "a"} {"text": "b"}              | invalid JSON at column 15: Trailing token (of type START_OBJECT) found after value (bound as `com.fasterxml.jackson.databind.JsonNode`): not allowed as per `DeserializationFeature.FAIL_ON_TRAILING_TOKENS`
            """)
    void badRowsAreErrorsAtTheirLine(String row, String what) throws IOException {
        assertError(write("{\"text\": \"ok\"}\n" + row + "\n{\"text\": \"ok\"}\n"), 2, what);
    }

    @Test
    void invalidJsonNamesLineAndColumn() throws IOException {
        Path p = write("{\"text\": \"ok\"}\n{\"text\": \"a\",}\n");
        var e = assertThrows(DataError.class, () -> load(p, OPTS));
        assertTrue(e.getMessage().startsWith(p + ":2: error: invalid JSON at column 14: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    @Test
    void duplicateKeysAreInvalidJson() throws IOException {
        Path p = write("{\"text\": \"a\", \"text\": \"b\"}\n");
        var e = assertThrows(DataError.class, () -> load(p, OPTS));
        assertTrue(e.getMessage().startsWith(p + ":1: error: invalid JSON"), e.getMessage());
        assertTrue(e.getMessage().contains("Duplicate field 'text'"), e.getMessage());
    }

    @Test
    void tokenizerIdsOutsideTheModelVocabularyAreErrors() throws IOException {
        // 'z' is id 125 in the test tokenizer, too big for a 110-token model.
        assertError(write("{\"text\": \"az\"}\n"), 1,
                "the tokenizer produced id 125 at position 2, outside the vocabulary [0, 110)",
                new FormatOptions(110, 1000, true));
    }

    @Test
    void invalidUtf8IsReportedOnItsLine() throws IOException {
        byte[] good = "{\"text\": \"ok\"}\n".getBytes(StandardCharsets.UTF_8);
        byte[] bad = {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xC3, (byte) 0x28, '"', '}', '\n'};
        byte[] all = new byte[good.length * 2 + bad.length];
        System.arraycopy(good, 0, all, 0, good.length);
        System.arraycopy(good, 0, all, good.length, good.length);
        System.arraycopy(bad, 0, all, good.length * 2, bad.length);
        assertError(write(all), 3, "the line is not valid UTF-8");
    }

    @Test
    void emptyFileIsAnError() throws IOException {
        assertError(write(""), 1, "the file is empty; expected one JSON object per line");
    }

    @Test
    void blankOnlyFileIsAnError() throws IOException {
        assertError(write("\n  \n\t\r\n"), 1, "the file has only blank lines; expected one JSON object per line");
    }

    @Test
    void missingFileIsAnError() {
        Path p = dir.resolve("nope.jsonl");
        var e = assertThrows(DataError.class, () -> load(p, OPTS));
        assertTrue(e.getMessage().startsWith(p + ":1: error: cannot read: java.nio.file.NoSuchFileException"),
                e.getMessage());
    }

    @Test
    void userTextInMessagesStaysOnOneLine() throws IOException {
        Path p = write("{\"messages\": [{\"role\": \"us\\ner\", \"content\": \"a\"}]}\n");
        assertError(p, 1, "messages[0] has unknown role \"us\\ner\"; expected one of [system, user, assistant]");
        assertFalse(new DataError(p, 3, "a\nb\r\nc").getMessage().contains("\n"));
        assertEquals(p + ":3: error: a b c", new DataError(p, 3, "a\nb\r\nc").getMessage());
    }
}
