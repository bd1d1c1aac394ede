package dev.collie.runtime.tokenizer;

import ai.djl.engine.EngineException;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;

/**
 * A Hugging Face {@code tokenizer.json}, run by the Rust tokenizers library through DJL.
 *
 * <p>Collie, not DJL, decides special tokens: the DJL tokenizer is created with {@code
 * addSpecialTokens=false} (so a post-processor such as LLaMA's {@code <s>} template never fires),
 * and {@link #encode} prepends BOS itself. Truncation and padding are disabled, and DJL is given no
 * {@code tokenizer_config.json}, so none of its Python-emulation extras (prefix space, accent
 * stripping, clean-up of spaces before punctuation) alter the text.
 *
 * <p>Special ids come from {@code tokenizer_config.json} beside the tokenizer.json ({@code
 * bos_token}, {@code eos_token}, {@code pad_token}: a string, or an object with {@code content}),
 * then {@code special_tokens_map.json}, then {@code config.json} ({@code bos_token_id}, ...: an
 * int, or a list whose first element is taken); each token independently.
 *
 * <p>Encoding and decoding are thread-safe (the native tokenizer is immutable), but not concurrent
 * with {@link #close()}; a {@link StreamDecoder} is for one thread.
 */
public final class HfTokenizer implements Tokenizer {

    static {
        // Left to its defaults, DJL (1) phones home to an AWS telemetry endpoint after probing the
        // EC2 metadata address, and (2) on a machine with a CUDA GPU asks for a CUDA build of the
        // native library, which is not in the jar, and so tries to download it. Offline mode turns
        // both off and selects the CPU library bundled in the jar, which is all a tokenizer needs.
        // An explicit choice (DJL_OFFLINE env var or ai.djl.offline property) is respected.
        if (System.getenv("DJL_OFFLINE") == null && System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String REPLACEMENT = "\uFFFD";
    private static final String[] SPECIAL_KEYS = {"bos", "eos", "pad"};

    private final Path tokenizerJson;
    private final HuggingFaceTokenizer djl;
    private final int vocabSize;
    private final OptionalLong bosId;
    private final OptionalLong eosId;
    private final OptionalLong padId;
    /** Ids of added tokens marked special (what {@code skipSpecial} drops). */
    private final BitSet specialIds;
    private final List<Path> files;

    private HfTokenizer(
            Path tokenizerJson,
            HuggingFaceTokenizer djl,
            int vocabSize,
            OptionalLong[] special,
            BitSet specialIds,
            List<Path> files) {
        this.tokenizerJson = tokenizerJson;
        this.djl = djl;
        this.vocabSize = vocabSize;
        this.bosId = special[0];
        this.eosId = special[1];
        this.padId = special[2];
        this.specialIds = specialIds;
        this.files = files;
    }

    /**
     * Loads {@code tokenizerJson} and the config files beside it.
     *
     * @throws TokenizerException if a file is unreadable or malformed (one-line message naming it)
     */
    public static HfTokenizer open(Path tokenizerJson) {
        Map<String, String> names = specialTokenNames(tokenizerJson);
        TokenizerJsonInfo info =
                TokenizerJsonInfo.read(tokenizerJson, new HashSet<>(names.values()));
        OptionalLong[] special = resolveSpecialIds(tokenizerJson, names, info);

        HuggingFaceTokenizer djl;
        // The stream overload, unlike newInstance(Path, ...), reads no tokenizer_config.json:
        // DJL's own config handling would re-enable special tokens and text clean-up.
        try (InputStream in = Files.newInputStream(tokenizerJson)) {
            djl = HuggingFaceTokenizer.newInstance(in, djlOptions());
        } catch (IOException e) {
            throw new TokenizerException(tokenizerJson, "cannot read: " + describe(e), e);
        } catch (EngineException e) {
            String what = "cannot load DJL's native tokenizers library: " + describe(e);
            throw new TokenizerException(tokenizerJson, what, e);
        } catch (RuntimeException e) {
            // The Rust parser's error (unknown model type, missing field, ...) surfaces here.
            throw new TokenizerException(tokenizerJson, describe(e), e);
        }

        List<Path> files = new ArrayList<>();
        files.add(tokenizerJson);
        for (String name :
                List.of("tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")) {
            Path p = tokenizerJson.resolveSibling(name);
            if (Files.isRegularFile(p)) {
                files.add(p);
            }
        }
        return new HfTokenizer(
                tokenizerJson, djl, info.maxId + 1, special, info.specialIds, List.copyOf(files));
    }

    private static Map<String, String> djlOptions() {
        return Map.of(
                "addSpecialTokens", "false",
                "truncation", "false",
                "padding", "false");
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public long[] encode(String text, boolean addBos) {
        long[] ids = djl.encode(text, false, false).getIds();
        if (!addBos || bosId.isEmpty()) {
            return ids;
        }
        long[] withBos = new long[ids.length + 1];
        withBos[0] = bosId.getAsLong();
        System.arraycopy(ids, 0, withBos, 1, ids.length);
        return withBos;
    }

    @Override
    public String decode(long[] ids, boolean skipSpecial) {
        return djl.decode(ids, skipSpecial);
    }

    /** A stream decoder that drops special tokens, as generated text wants. */
    @Override
    public StreamDecoder streamDecoder() {
        return streamDecoder(true);
    }

    /**
     * A stream decoder whose concatenated output equals {@code decode(allIds, skipSpecial)}
     * whenever that text does not end in an incomplete character: text is held back while it
     * ends in U+FFFD (the bytes of a character are not all there yet), so characters are never
     * split, and a trailing incomplete character is never emitted.
     *
     * <p>One case cannot be streamed exactly: LLaMA's ByteFallback decoder converts a run of
     * consecutive byte pieces ({@code <0xE2>}) all at once, and if the run turns out to be invalid
     * UTF-8 it becomes U+FFFD <em>as a whole</em>, including characters that were complete, and
     * already emitted, before the bad byte. That needs a model emitting broken UTF-8; valid text,
     * and invalid bytes that do not follow a complete character in the same run, stream exactly.
     */
    public StreamDecoder streamDecoder(boolean skipSpecial) {
        return new IncrementalDecoder(skipSpecial);
    }

    @Override
    public OptionalLong bosId() {
        return bosId;
    }

    @Override
    public OptionalLong eosId() {
        return eosId;
    }

    @Override
    public OptionalLong padId() {
        return padId;
    }

    @Override
    public List<Path> files() {
        return files;
    }

    /** Frees the native tokenizer; idempotent. Using the tokenizer afterwards throws. */
    @Override
    public void close() {
        djl.close();
    }

    @Override
    public String toString() {
        return "HfTokenizer[" + tokenizerJson + ", vocabSize=" + vocabSize + "]";
    }

    /**
     * Decodes a sliding window instead of the whole prefix, so each token costs O(1) amortised
     * (the same scheme as Hugging Face's text-generation-inference). The window starts at the
     * first token of the previously emitted chunk: decoders such as LLaMA's {@code Strip} or
     * {@code Metaspace} drop a leading space of the <em>first</em> token only, and keeping
     * already-emitted context in front makes that drop hit both sides of the subtraction {@code
     * decode(window + new) - decode(window)} alike, exactly as in a full decode. Chunks end only
     * where the text has no trailing U+FFFD, so a window never starts mid-character.
     */
    private final class IncrementalDecoder implements StreamDecoder {
        private final boolean skipSpecial;
        private long[] ids = new long[64];
        private int size;
        private int prefixOffset; // window start
        private int readOffset; // ids before this have had their text emitted
        private int emittedLength; // chars returned so far

        IncrementalDecoder(boolean skipSpecial) {
            this.skipSpecial = skipSpecial;
        }

        @Override
        public String push(long id) {
            if (size == ids.length) {
                ids = Arrays.copyOf(ids, size * 2);
            }
            ids[size++] = id;
            if (id < 0 || id >= vocabSize) {
                return ""; // decodes to nothing
            }
            if (skipSpecial && specialIds.get((int) id)) {
                return ""; // dropped before the decoder runs, so it cannot change the text
            }
            String prefixText = decodeRange(prefixOffset, readOffset);
            String newText = decodeRange(prefixOffset, size);
            String delta;
            if (newText.startsWith(prefixText)) {
                if (newText.length() == prefixText.length() || newText.endsWith(REPLACEMENT)) {
                    return "";
                }
                delta = newText.substring(prefixText.length());
            } else {
                // Text already emitted was rewritten (ByteFallback turning a run that went bad into
                // U+FFFD, or a decoder we do not know). It cannot be taken back; continue from the
                // full decode past what was emitted, so at least the length stays in step.
                String full = decodeRange(0, size);
                if (full.endsWith(REPLACEMENT) || full.length() <= emittedLength) {
                    return "";
                }
                delta = full.substring(emittedLength);
            }
            prefixOffset = readOffset;
            readOffset = size;
            emittedLength += delta.length();
            return delta;
        }

        private String decodeRange(int from, int to) {
            return from == to ? "" : djl.decode(Arrays.copyOfRange(ids, from, to), skipSpecial);
        }
    }

    // ---------------------------------------------------------------- special tokens

    /** bos/eos/pad token strings from tokenizer_config.json, then special_tokens_map.json. */
    private static Map<String, String> specialTokenNames(Path tokenizerJson) {
        Map<String, String> names = new HashMap<>();
        for (String file : List.of("tokenizer_config.json", "special_tokens_map.json")) {
            JsonNode root = readJsonIfPresent(tokenizerJson.resolveSibling(file));
            if (root == null) {
                continue;
            }
            for (String key : SPECIAL_KEYS) {
                JsonNode node = root.get(key + "_token");
                if (node != null && node.isObject()) {
                    node = node.get("content"); // AddedToken form: {"content": "<s>", ...}
                }
                if (node != null && node.isTextual()) {
                    names.putIfAbsent(key, node.asText());
                }
            }
        }
        return names;
    }

    private static OptionalLong[] resolveSpecialIds(
            Path tokenizerJson, Map<String, String> names, TokenizerJsonInfo info) {
        JsonNode config = null;
        boolean configRead = false;
        OptionalLong[] ids = new OptionalLong[SPECIAL_KEYS.length];
        for (int i = 0; i < SPECIAL_KEYS.length; i++) {
            String key = SPECIAL_KEYS[i];
            Integer id = names.containsKey(key) ? info.idOf(names.get(key)) : null;
            if (id == null) {
                if (!configRead) {
                    config = readJsonIfPresent(tokenizerJson.resolveSibling("config.json"));
                    configRead = true;
                }
                id = configId(config, key + "_token_id");
            }
            ids[i] = id == null ? OptionalLong.empty() : OptionalLong.of(id);
        }
        return ids;
    }

    /** An id field of config.json: an int, or a list (Llama 3 lists several EOS ids): its first. */
    private static Integer configId(JsonNode config, String field) {
        JsonNode node = config == null ? null : config.get(field);
        if (node != null && node.isArray()) {
            node = node.isEmpty() ? null : node.get(0);
        }
        return node != null && node.isIntegralNumber() ? node.intValue() : null;
    }

    private static JsonNode readJsonIfPresent(Path file) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            return JSON.readTree(file.toFile());
        } catch (JsonProcessingException e) {
            throw new TokenizerException(file, describe(e), e);
        } catch (IOException e) {
            throw new TokenizerException(file, "cannot read: " + describe(e), e);
        }
    }

    // ---------------------------------------------------------------- tokenizer.json metadata

    /**
     * What Collie needs from tokenizer.json that DJL does not expose: the largest id, the ids of
     * the special-token strings, and which added tokens are special. Read with a streaming
     * parser that skips the merges and keeps only the wanted vocabulary entries, because real
     * files run to tens of megabytes.
     */
    private static final class TokenizerJsonInfo {
        final Set<String> wanted;
        final Map<String, Integer> vocabIds = new HashMap<>(); // only wanted strings
        final Map<String, Integer> addedIds = new HashMap<>(); // all added tokens
        final BitSet specialIds = new BitSet();
        int maxId = -1;

        private TokenizerJsonInfo(Set<String> wanted) {
            this.wanted = wanted;
        }

        /** Added tokens win over the model vocabulary, as in the tokenizers library. */
        Integer idOf(String token) {
            Integer id = addedIds.get(token);
            return id != null ? id : vocabIds.get(token);
        }

        static TokenizerJsonInfo read(Path file, Set<String> wanted) {
            TokenizerJsonInfo info = new TokenizerJsonInfo(wanted);
            try (JsonParser p = JSON.createParser(file.toFile())) {
                if (p.nextToken() != JsonToken.START_OBJECT) {
                    throw new TokenizerException(file, "expected a JSON object");
                }
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String field = p.currentName();
                    p.nextToken();
                    switch (field) {
                        case "model" -> info.readModel(p);
                        case "added_tokens" -> info.readAddedTokens(p.readValueAsTree());
                        default -> p.skipChildren();
                    }
                }
            } catch (JsonProcessingException e) {
                throw new TokenizerException(file, describe(e), e);
            } catch (IOException e) {
                throw new TokenizerException(file, "cannot read: " + describe(e), e);
            }
            if (info.maxId < 0) {
                throw new TokenizerException(
                        file, "no tokens: model.vocab and added_tokens are empty");
            }
            return info;
        }

        private void readModel(JsonParser p) throws IOException {
            if (p.currentToken() != JsonToken.START_OBJECT) {
                p.skipChildren();
                return;
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken value = p.nextToken();
                if (!field.equals("vocab")) {
                    p.skipChildren();
                } else if (value == JsonToken.START_OBJECT) {
                    // BPE, WordPiece, WordLevel: {"piece": id, ...}
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String piece = p.currentName();
                        p.nextToken();
                        addPiece(piece, p.getIntValue());
                    }
                } else if (value == JsonToken.START_ARRAY) {
                    // Unigram: [["piece", score], ...]; the id is the position.
                    int id = 0;
                    while (p.nextToken() == JsonToken.START_ARRAY) {
                        p.nextToken();
                        addPiece(p.getText(), id++);
                        while (p.nextToken() != JsonToken.END_ARRAY) {
                            p.skipChildren();
                        }
                    }
                } else {
                    p.skipChildren();
                }
            }
        }

        private void addPiece(String piece, int id) {
            maxId = Math.max(maxId, id);
            if (wanted.contains(piece)) {
                vocabIds.put(piece, id);
            }
        }

        private void readAddedTokens(JsonNode added) {
            if (added == null || !added.isArray()) {
                return;
            }
            for (JsonNode t : added) {
                JsonNode id = t.get("id");
                JsonNode content = t.get("content");
                if (id != null && id.isIntegralNumber() && content != null && content.isTextual()) {
                    maxId = Math.max(maxId, id.intValue());
                    addedIds.put(content.asText(), id.intValue());
                    if (t.path("special").asBoolean(false) && id.intValue() >= 0) {
                        specialIds.set(id.intValue());
                    }
                }
            }
        }
    }

    /** A failure in a few words: the parser's message with its position, or the exception's. */
    private static String describe(Throwable e) {
        if (e instanceof JsonProcessingException j) {
            JsonLocation loc = j.getLocation();
            String where = loc == null
                    ? ""
                    : " (line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ")";
            return "invalid JSON: " + j.getOriginalMessage() + where;
        }
        if (e instanceof NoSuchFileException || e instanceof FileNotFoundException) {
            return "no such file";
        }
        String msg = e.getMessage();
        return msg == null || msg.isBlank() ? e.getClass().getSimpleName() : msg;
    }
}
