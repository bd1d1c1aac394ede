package dev.collie.runtime.data;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.collie.runtime.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.OptionalLong;
import java.util.Set;

/**
 * Reads a JSONL training file: one JSON object per line, blank lines ignored, UTF-8 (a leading byte
 * order mark and CRLF line ends are accepted). The shape of each line is recognised by its keys:
 *
 * <ul>
 *   <li>{@code {"text": "..."}} — plain text; the loss covers every token. BOS first if the tokenizer
 *       has one, EOS appended if it has one. The text must not be empty.
 *   <li>{@code {"prompt": "...", "response": "..."}} — the loss covers the response and the EOS after
 *       it, never the prompt. Prompt (with BOS) and response are encoded separately and concatenated,
 *       so the mask falls exactly where the response starts. The prompt may be empty; the response may
 *       not (a row that only teaches "stop at once" is almost always a data bug).
 *   <li>{@code {"messages": [{"role": "...", "content": "..."}, ...]}} — a conversation rendered with
 *       the {@link ChatTemplate}; the loss covers assistant turns only (content, suffix and the EOS
 *       after each). Roles are system, user and assistant, in any order; the array must not be empty.
 *   <li>{@code {"input_ids": [...], "labels": [...]}} — already tokenized; used as is (no BOS or EOS is
 *       added). Without {@code labels} every token is learned; with them the lengths must match and each
 *       label must be -100 or a valid id.
 * </ul>
 *
 * <p>Keys outside the recognised shape are an error, not ignored: a misspelt {@code "respones"} would
 * otherwise turn a supervised row into something else or silently drop its target.
 *
 * <p>Every problem is a {@link DataError} naming the file and 1-based line: invalid UTF-8 or JSON, a
 * line that is not an object, an unknown shape (the message lists the accepted shapes), a field of the
 * wrong type, a message without role or content or with an unknown role, empty text, an id outside
 * {@code [0, vocabSize)}, labels of the wrong length, and a file that is empty or only blank lines.
 *
 * <p>Rows longer than {@link FormatOptions#maxLength()} keep their first {@code maxLength} tokens when
 * {@link FormatOptions#truncate()} is on (counted in {@link Stats#truncatedRows()}; the cut can remove
 * the final EOS) and are an error naming both lengths when it is off.
 *
 * <p>A row left with no label to learn from (every label -100 — a conversation without an assistant
 * turn, pre-tokenized labels all masked, or a prompt that filled the whole row before truncation cut
 * the response) is a warning, not an error: it is skipped, counted in {@link Stats#skippedRows()}, and
 * the first {@value #MAX_WARNINGS} are described in {@link Stats#warnings()}. Skipping rather than
 * keeping, because such a row costs compute and contributes nothing, and a batch made only of such
 * rows would divide a zero loss by zero tokens. A file in which every row is skipped is an error.
 */
public final class JsonlExamples {

    /** How many skipped-row warnings {@link Stats#warnings()} keeps; the count is always exact. */
    public static final int MAX_WARNINGS = 20;

    private static final String SHAPES =
            "expected one of {\"text\"}, {\"prompt\", \"response\"}, {\"messages\"}, {\"input_ids\"[, \"labels\"]}";

    private static final ObjectMapper JSON = JsonMapper.builder()
            // One object per line: "{...} {...}" is a broken file, not two rows.
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            // With a duplicated key, which value wins is a parser detail; make the author decide.
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .build();

    private JsonlExamples() {}

    /**
     * What a read produced.
     *
     * @param rows rows returned
     * @param tokens tokens in the returned rows (after truncation)
     * @param learnedTokens positions of the returned rows whose label is not -100
     * @param truncatedRows rows cut to {@code maxLength} (skipped ones included)
     * @param skippedRows rows dropped for having no label to learn from
     * @param warnings {@code file:line: warning: ...} for the first {@value #MAX_WARNINGS} skipped rows
     */
    public record Stats(
            long rows, long tokens, long learnedTokens, long truncatedRows, long skippedRows, List<String> warnings) {
        public Stats {
            warnings = List.copyOf(warnings);
        }
    }

    public record Result(List<Example> examples, Stats stats) {
        public Result {
            examples = Collections.unmodifiableList(examples);
        }
    }

    /** The examples of {@code file}; see {@link #load} for the stats as well. */
    public static List<Example> read(Path file, Tokenizer tok, ChatTemplate tmpl, FormatOptions opts) {
        return load(file, tok, tmpl, opts).examples();
    }

    /** The examples of {@code file} with counts of rows, tokens, truncated and skipped rows. */
    public static Result load(Path file, Tokenizer tok, ChatTemplate tmpl, FormatOptions opts) {
        Reader r = new Reader(file, tok, tmpl, opts);
        try (InputStream in = Files.newInputStream(file)) {
            r.readAll(new LineSplitter(in));
        } catch (IOException e) {
            throw new DataError(file, r.line, "cannot read: " + e, e);
        }
        return r.finish();
    }

    /** The state of one read: the current line and the running counts. */
    private static final class Reader {
        final Path file;
        final Tokenizer tok;
        final ChatTemplate tmpl;
        final FormatOptions opts;
        final List<Example> out = new ArrayList<>();
        final List<String> warnings = new ArrayList<>();
        long line;
        long nonBlank;
        long tokens;
        long learned;
        long truncated;
        long skipped;

        Reader(Path file, Tokenizer tok, ChatTemplate tmpl, FormatOptions opts) {
            this.file = file;
            this.tok = tok;
            this.tmpl = tmpl;
            this.opts = opts;
        }

        void readAll(LineSplitter lines) throws IOException {
            byte[] raw;
            while ((raw = lines.next()) != null) {
                line++;
                int start = 0;
                int end = raw.length;
                if (line == 1 && end >= 3 && (raw[0] & 0xff) == 0xEF && (raw[1] & 0xff) == 0xBB && (raw[2] & 0xff) == 0xBF) {
                    start = 3; // UTF-8 byte order mark, as some Windows editors write
                }
                if (isBlank(raw, start, end)) {
                    continue;
                }
                nonBlank++;
                row(decode(raw, start, end));
            }
        }

        Result finish() {
            if (nonBlank == 0) {
                throw new DataError(file, 1, line == 0
                        ? "the file is empty; expected one JSON object per line"
                        : "the file has only blank lines; expected one JSON object per line");
            }
            if (out.isEmpty()) {
                throw new DataError(file, 1, "no row has a label to learn from: all " + skipped
                        + " rows were skipped (every label is -100)");
            }
            return new Result(out, new Stats(out.size(), tokens, learned, truncated, skipped, warnings));
        }

        private String decode(byte[] raw, int start, int end) {
            try {
                return StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(raw, start, end - start))
                        .toString();
            } catch (CharacterCodingException e) {
                throw error("the line is not valid UTF-8");
            }
        }

        private void row(String text) {
            JsonNode node;
            try {
                node = JSON.readTree(text);
            } catch (JsonProcessingException e) {
                int col = e.getLocation() == null ? -1 : e.getLocation().getColumnNr();
                throw error("invalid JSON" + (col > 0 ? " at column " + col : "") + ": " + e.getOriginalMessage());
            }
            if (!node.isObject()) {
                throw error("expected a JSON object, got " + kind(node) + "; " + SHAPES);
            }
            Example ex;
            if (node.has("input_ids")) {
                allowOnly(node, Set.of("input_ids", "labels"), "{\"input_ids\", \"labels\"}");
                ex = preTokenized(node);
            } else if (node.has("messages")) {
                allowOnly(node, Set.of("messages"), "{\"messages\"}");
                ex = chat(node.get("messages"));
            } else if (node.has("prompt") || node.has("response")) {
                allowOnly(node, Set.of("prompt", "response"), "{\"prompt\", \"response\"}");
                ex = promptResponse(node);
            } else if (node.has("text")) {
                allowOnly(node, Set.of("text"), "{\"text\"}");
                ex = text(node);
            } else {
                throw error("unknown row shape with keys " + keys(node).stream().map(JsonlExamples::quote).toList()
                        + "; " + SHAPES);
            }
            accept(ex);
        }

        private Example text(JsonNode node) {
            String text = string(node, "text");
            if (text.isEmpty()) {
                throw error("\"text\" is empty");
            }
            long[] body = tok.encode(text, true);
            OptionalLong eos = tok.eosId();
            long[] ids = eos.isPresent() ? append(body, eos.getAsLong()) : body;
            checkIds(ids, "the tokenizer produced");
            return new Example(ids, ids.clone(), line);
        }

        private Example promptResponse(JsonNode node) {
            if (!node.has("prompt")) {
                throw error("a row with \"response\" needs \"prompt\" too (it may be \"\")");
            }
            if (!node.has("response")) {
                throw error("a row with \"prompt\" needs \"response\" too");
            }
            String prompt = string(node, "prompt");
            String response = string(node, "response");
            if (response.isEmpty()) {
                throw error("\"response\" is empty");
            }
            long[] p = prompt.isEmpty() ? bosOnly() : tok.encode(prompt, true);
            long[] r = tok.encode(response, false);
            OptionalLong eos = tok.eosId();
            if (eos.isPresent()) {
                r = append(r, eos.getAsLong());
            }
            long[] ids = concat(p, r);
            long[] labels = ids.clone();
            Arrays.fill(labels, 0, p.length, Example.IGNORE);
            checkIds(ids, "the tokenizer produced");
            return new Example(ids, labels, line);
        }

        private Example chat(JsonNode messages) {
            if (!messages.isArray()) {
                throw error("\"messages\" must be an array of {\"role\", \"content\"} objects, got " + kind(messages));
            }
            if (messages.isEmpty()) {
                throw error("\"messages\" is empty");
            }
            List<ChatTemplate.Message> turns = new ArrayList<>(messages.size());
            for (int i = 0; i < messages.size(); i++) {
                JsonNode m = messages.get(i);
                String where = "messages[" + i + "]";
                if (!m.isObject()) {
                    throw error(where + " must be an object with \"role\" and \"content\", got " + kind(m));
                }
                for (String k : keys(m)) {
                    if (!k.equals("role") && !k.equals("content")) {
                        throw error(where + " has unknown key " + quote(k) + "; a message has only \"role\" and \"content\"");
                    }
                }
                if (!m.has("role")) {
                    throw error(where + " has no \"role\"");
                }
                if (!m.has("content")) {
                    throw error(where + " has no \"content\"");
                }
                String role = string(m, "role", where + ".role");
                String content = string(m, "content", where + ".content");
                if (!ChatTemplate.ROLES.contains(role)) {
                    throw error(where + " has unknown role " + quote(role) + "; expected one of " + ChatTemplate.ROLES);
                }
                turns.add(new ChatTemplate.Message(role, content));
            }
            ChatTemplate.Tokens t = tmpl.encode(turns, tok);
            if (t.ids().length == 0) {
                throw error("the conversation encodes to no tokens");
            }
            checkIds(t.ids(), "the tokenizer produced");
            return new Example(t.ids(), t.labels(), line);
        }

        private Example preTokenized(JsonNode node) {
            long[] ids = longs(node.get("input_ids"), "input_ids");
            if (ids.length == 0) {
                throw error("\"input_ids\" is empty");
            }
            checkIds(ids, "input_ids has");
            if (!node.has("labels")) {
                return new Example(ids, ids.clone(), line);
            }
            long[] labels = longs(node.get("labels"), "labels");
            if (labels.length != ids.length) {
                throw error("\"labels\" has " + labels.length + " entries but \"input_ids\" has " + ids.length);
            }
            for (int i = 0; i < labels.length; i++) {
                long l = labels[i];
                if (l != Example.IGNORE && (l < 0 || l >= opts.vocabSize())) {
                    throw error("labels[" + i + "] = " + l + " is neither -100 nor a token id in [0, "
                            + opts.vocabSize() + ")");
                }
            }
            return new Example(ids, labels, line);
        }

        /** Truncates, drops rows with nothing to learn, counts. */
        private void accept(Example ex) {
            boolean cut = false;
            if (ex.length() > opts.maxLength()) {
                if (!opts.truncate()) {
                    throw error("the row has " + ex.length() + " tokens, more than max_length " + opts.maxLength()
                            + " (raise max_length or enable truncation)");
                }
                ex = new Example(Arrays.copyOf(ex.ids(), opts.maxLength()),
                        Arrays.copyOf(ex.labels(), opts.maxLength()), ex.line());
                truncated++;
                cut = true;
            }
            int learnedHere = ex.learnedTokens();
            if (learnedHere == 0) {
                skipped++;
                if (warnings.size() < MAX_WARNINGS) {
                    warnings.add(file + ":" + line + ": warning: the row has no label to learn from (every label is -100"
                            + (cut ? " after truncation to " + opts.maxLength() + " tokens" : "") + "); skipped");
                }
                return;
            }
            out.add(ex);
            tokens += ex.length();
            learned += learnedHere;
        }

        private void checkIds(long[] ids, String source) {
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] < 0 || ids[i] >= opts.vocabSize()) {
                    throw error(source + " id " + ids[i] + " at position " + i + ", outside the vocabulary [0, "
                            + opts.vocabSize() + ")");
                }
            }
        }

        private long[] longs(JsonNode node, String field) {
            if (!node.isArray()) {
                throw error(quote(field) + " must be an array of integers, got " + kind(node));
            }
            long[] out = new long[node.size()];
            for (int i = 0; i < out.length; i++) {
                JsonNode v = node.get(i);
                if (!v.isIntegralNumber() || !v.canConvertToLong()) {
                    throw error(field + "[" + i + "] must be an integer, got " + (v.isNumber() ? v.asText() : kind(v)));
                }
                out[i] = v.longValue();
            }
            return out;
        }

        private String string(JsonNode obj, String field) {
            return string(obj, field, field);
        }

        private String string(JsonNode obj, String field, String name) {
            JsonNode v = obj.get(field);
            if (!v.isTextual()) {
                throw error(quote(name) + " must be a string, got " + kind(v));
            }
            return v.textValue();
        }

        private void allowOnly(JsonNode node, Set<String> allowed, String shape) {
            for (String k : keys(node)) {
                if (!allowed.contains(k)) {
                    throw error("unexpected key " + quote(k) + " in a " + shape + " row; " + SHAPES);
                }
            }
        }

        private long[] bosOnly() {
            OptionalLong bos = tok.bosId();
            return bos.isPresent() ? new long[] {bos.getAsLong()} : new long[0];
        }

        private DataError error(String what) {
            return new DataError(file, line, what);
        }
    }

    /**
     * Splits a byte stream at {@code '\n'}, dropping a trailing {@code '\r'}. Works on bytes rather than
     * a {@link java.io.BufferedReader} so that invalid UTF-8 is reported on the line that holds it
     * (a decoding reader fails wherever its buffer happens to be).
     */
    private static final class LineSplitter {
        private final InputStream in;
        private final byte[] buf = new byte[1 << 16];
        private int pos;
        private int len;
        private boolean eof;

        LineSplitter(InputStream in) {
            this.in = in;
        }

        /** The next line without its terminator, or null at the end of the stream. */
        byte[] next() throws IOException {
            byte[] acc = null;
            int accLen = 0;
            while (true) {
                if (pos == len) {
                    if (eof) {
                        break;
                    }
                    len = in.read(buf);
                    pos = 0;
                    if (len <= 0) {
                        len = 0;
                        eof = true;
                        break;
                    }
                }
                int nl = pos;
                while (nl < len && buf[nl] != '\n') {
                    nl++;
                }
                int n = nl - pos;
                if (acc == null) {
                    acc = new byte[Math.max(n, 256)];
                } else if (accLen + n > acc.length) {
                    acc = Arrays.copyOf(acc, Math.max(acc.length * 2, accLen + n));
                }
                System.arraycopy(buf, pos, acc, accLen, n);
                accLen += n;
                pos = nl;
                if (nl < len) {
                    pos++; // consume '\n'
                    return trimCr(acc, accLen);
                }
            }
            // End of stream: a last line without '\n' still counts; nothing after a final '\n' does.
            return acc == null ? null : trimCr(acc, accLen);
        }

        private static byte[] trimCr(byte[] acc, int n) {
            if (n > 0 && acc[n - 1] == '\r') {
                n--;
            }
            return Arrays.copyOf(acc, n);
        }
    }

    private static boolean isBlank(byte[] b, int start, int end) {
        for (int i = start; i < end; i++) {
            if (b[i] != ' ' && b[i] != '\t' && b[i] != '\r') {
                return false;
            }
        }
        return true;
    }

    private static long[] append(long[] a, long v) {
        long[] r = Arrays.copyOf(a, a.length + 1);
        r[a.length] = v;
        return r;
    }

    private static long[] concat(long[] a, long[] b) {
        long[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    private static List<String> keys(JsonNode obj) {
        List<String> ks = new ArrayList<>();
        obj.fieldNames().forEachRemaining(ks::add);
        return ks;
    }

    private static String kind(JsonNode n) {
        return switch (n.getNodeType()) {
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            case STRING -> "a string";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL -> "null";
            default -> n.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
        };
    }

    /** A user-supplied string in a diagnostic: JSON-quoted so control characters stay visible, and cut short. */
    private static String quote(String s) {
        String shown = s.length() > 40 ? s.substring(0, 40) + "..." : s;
        try {
            return JSON.writeValueAsString(shown);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e); // a String always serialises
        }
    }
}
