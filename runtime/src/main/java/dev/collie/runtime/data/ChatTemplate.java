package dev.collie.runtime.data;

import dev.collie.runtime.tokenizer.Tokenizer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeSet;

/**
 * How a conversation becomes one token sequence.
 *
 * <p>A conversation renders as {@code bos} followed, for each message, by
 * {@code rolePrefix[role] + content + roleSuffix[role]}. Roles are {@code system}, {@code user} and
 * {@code assistant}; both maps must hold exactly those three keys. {@code generationPrefix} is what is
 * appended after the history to make the model answer; normally the assistant prefix.
 *
 * <p>Training ({@link #encode}): the loss covers the assistant's content and the assistant suffix;
 * everything else (BOS, every prefix, system and user turns) is masked with -100. The tokenizer's EOS
 * id follows each assistant turn and is learned too, so the model learns to stop — unless the suffix
 * already ends with EOS (a suffix such as {@code "</s>"} that the tokenizer maps to its EOS id), in
 * which case no second EOS is added. With a tokenizer without EOS nothing is added.
 *
 * <p>Each piece (BOS, prefix, content, suffix) is encoded on its own and the ids are concatenated.
 * Encoding the whole rendered string at once can merge tokens across a piece boundary, and then no
 * label mask could say exactly where the assistant's answer starts; piecewise encoding makes the
 * mask exact at the cost of occasionally tokenizing a boundary differently from the full string.
 * {@link #encodeForGeneration} encodes the same way so inference sees the ids training saw.
 *
 * <p>BOS: a non-empty {@code bos} string is encoded as text (for templates that spell it, such as
 * {@code "<s>"}); an empty one means "the tokenizer's BOS id, if it has one".
 */
public record ChatTemplate(
        String bos, Map<String, String> rolePrefix, Map<String, String> roleSuffix, String generationPrefix) {

    public static final List<String> ROLES = List.of("system", "user", "assistant");

    /** Keys {@link #parse} understands. */
    public static final List<String> KEYS = List.of(
            "bos",
            "system_prefix", "system_suffix",
            "user_prefix", "user_suffix",
            "assistant_prefix", "assistant_suffix",
            "generation_prefix");

    /** One turn of a conversation. */
    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(content, "content");
            if (!ROLES.contains(role)) {
                throw new IllegalArgumentException("unknown role " + role + "; expected one of " + ROLES);
            }
        }
    }

    /** Ids of a conversation and their labels (-100 where the loss ignores a position). */
    public record Tokens(long[] ids, long[] labels) {}

    public ChatTemplate {
        Objects.requireNonNull(bos, "bos");
        Objects.requireNonNull(generationPrefix, "generationPrefix");
        rolePrefix = checkRoles(rolePrefix, "rolePrefix");
        roleSuffix = checkRoles(roleSuffix, "roleSuffix");
    }

    private static Map<String, String> checkRoles(Map<String, String> m, String name) {
        Objects.requireNonNull(m, name);
        if (!m.keySet().equals(Set.copyOf(ROLES))) {
            throw new IllegalArgumentException(
                    name + " must have exactly the roles " + ROLES + ", got " + new TreeSet<>(m.keySet()));
        }
        return Map.copyOf(m); // rejects null values too
    }

    /**
     * The default template, a plain tagged layout that needs no special tokens:
     *
     * <pre>
     * &lt;|system|&gt;\n{system}\n&lt;|user|&gt;\n{user}\n&lt;|assistant|&gt;\n{assistant}\n[EOS]...
     * </pre>
     *
     * that is {@code <role>_prefix = "<|role|>\n"} and {@code <role>_suffix = "\n"} for every role,
     * {@code bos = ""} (the tokenizer's BOS id) and {@code generation_prefix = "<|assistant|>\n"}.
     */
    public static ChatTemplate defaults() {
        return parse(Map.of());
    }

    /**
     * A template from flat settings; every key is optional and falls back to {@link #defaults()}:
     * {@code bos}, {@code system_prefix}, {@code system_suffix}, {@code user_prefix},
     * {@code user_suffix}, {@code assistant_prefix}, {@code assistant_suffix}, {@code generation_prefix}
     * (which defaults to the — possibly overridden — {@code assistant_prefix}). Values are used
     * literally: escape sequences such as {@code \n} must already be decoded by the config reader.
     *
     * @throws IllegalArgumentException for a key not in {@link #KEYS}: a misspelt key would otherwise
     *     silently train with the default layout
     */
    public static ChatTemplate parse(Map<String, String> settings) {
        for (String k : settings.keySet()) {
            if (!KEYS.contains(k)) {
                throw new IllegalArgumentException("unknown chat template key \"" + k + "\"; known keys: " + KEYS);
            }
        }
        Map<String, String> prefix = new LinkedHashMap<>();
        Map<String, String> suffix = new LinkedHashMap<>();
        for (String role : ROLES) {
            prefix.put(role, value(settings, role + "_prefix", "<|" + role + "|>\n"));
            suffix.put(role, value(settings, role + "_suffix", "\n"));
        }
        return new ChatTemplate(
                value(settings, "bos", ""),
                prefix,
                suffix,
                value(settings, "generation_prefix", prefix.get("assistant")));
    }

    private static String value(Map<String, String> settings, String key, String fallback) {
        String v = settings.get(key);
        if (v == null && settings.containsKey(key)) {
            throw new IllegalArgumentException("chat template key \"" + key + "\" has no value");
        }
        return v == null ? fallback : v;
    }

    public String prefix(String role) {
        return rolePrefix.get(role);
    }

    public String suffix(String role) {
        return roleSuffix.get(role);
    }

    /** The conversation as text, for display and debugging; EOS ids are not part of text and are absent. */
    public String render(List<Message> messages, boolean addGenerationPrefix) {
        StringBuilder sb = new StringBuilder(bos);
        for (Message m : messages) {
            sb.append(prefix(m.role())).append(m.content()).append(suffix(m.role()));
        }
        if (addGenerationPrefix) {
            sb.append(generationPrefix);
        }
        return sb.toString();
    }

    /** Training ids and labels of a conversation; see the class comment for what is learned. */
    public Tokens encode(List<Message> messages, Tokenizer tok) {
        LongArrayBuilder ids = new LongArrayBuilder();
        LongArrayBuilder labels = new LongArrayBuilder();
        appendBos(tok, ids, labels);
        OptionalLong eos = tok.eosId();
        for (Message m : messages) {
            boolean learned = m.role().equals("assistant");
            append(encodeText(tok, prefix(m.role())), false, ids, labels);
            long[] content = encodeText(tok, m.content());
            long[] suffix = encodeText(tok, suffix(m.role()));
            append(content, learned, ids, labels);
            append(suffix, learned, ids, labels);
            if (learned && eos.isPresent() && !endsWith(content, suffix, eos.getAsLong())) {
                ids.add(eos.getAsLong());
                labels.add(eos.getAsLong());
            }
        }
        return new Tokens(ids.toArray(), labels.toArray());
    }

    /** Ids to feed a model so it writes the next assistant turn: the history as trained, then {@link #generationPrefix}. */
    public long[] encodeForGeneration(List<Message> history, Tokenizer tok) {
        LongArrayBuilder ids = new LongArrayBuilder();
        ids.addAll(encode(history, tok).ids());
        ids.addAll(encodeText(tok, generationPrefix));
        return ids.toArray();
    }

    private void appendBos(Tokenizer tok, LongArrayBuilder ids, LongArrayBuilder labels) {
        if (!bos.isEmpty()) {
            append(encodeText(tok, bos), false, ids, labels);
        } else if (tok.bosId().isPresent()) {
            ids.add(tok.bosId().getAsLong());
            labels.add(Example.IGNORE);
        }
    }

    /** Ids of {@code s} without BOS; nothing at all for "" (some tokenizers emit ids for empty input). */
    static long[] encodeText(Tokenizer tok, String s) {
        return s.isEmpty() ? new long[0] : tok.encode(s, false);
    }

    private static void append(long[] piece, boolean learned, LongArrayBuilder ids, LongArrayBuilder labels) {
        ids.addAll(piece);
        if (learned) {
            labels.addAll(piece);
        } else {
            labels.fill(Example.IGNORE, piece.length);
        }
    }

    /** Whether content followed by suffix ends with {@code eos}, i.e. the turn already stops by itself. */
    private static boolean endsWith(long[] content, long[] suffix, long eos) {
        long[] last = suffix.length > 0 ? suffix : content;
        return last.length > 0 && last[last.length - 1] == eos;
    }
}
