package dev.collie.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.data.ChatTemplate.Message;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ChatTemplateTest {

    private static final CharTokenizer TOK = new CharTokenizer();
    private static final long X = Example.IGNORE;

    @Test
    void defaultsAreThePlainTaggedLayout() {
        ChatTemplate t = ChatTemplate.defaults();
        assertEquals("", t.bos());
        assertEquals("<|system|>\n", t.prefix("system"));
        assertEquals("<|user|>\n", t.prefix("user"));
        assertEquals("<|assistant|>\n", t.prefix("assistant"));
        for (String role : ChatTemplate.ROLES) {
            assertEquals("\n", t.suffix(role));
        }
        assertEquals("<|assistant|>\n", t.generationPrefix());
        assertEquals("<|user|>\nhi\n<|assistant|>\nyo\n<|assistant|>\n",
                t.render(List.of(new Message("user", "hi"), new Message("assistant", "yo")), true));
    }

    @Test
    void parseOverridesAndGenerationPrefixFollowsAssistantPrefix() {
        ChatTemplate t = ChatTemplate.parse(Map.of("user_prefix", "U:", "assistant_prefix", "A:", "assistant_suffix", "<eos>"));
        assertEquals("U:", t.prefix("user"));
        assertEquals("A:", t.prefix("assistant"));
        assertEquals("<eos>", t.suffix("assistant"));
        assertEquals("\n", t.suffix("user"));
        assertEquals("A:", t.generationPrefix());
        assertEquals("G:", ChatTemplate.parse(Map.of("assistant_prefix", "A:", "generation_prefix", "G:")).generationPrefix());
        assertEquals("<s>", ChatTemplate.parse(Map.of("bos", "<s>")).bos());
    }

    @Test
    void parseRejectsUnknownKeys() {
        var e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.parse(Map.of("asistant_prefix", "A:")));
        assertTrue(e.getMessage().contains("\"asistant_prefix\""), e.getMessage());
        assertTrue(e.getMessage().contains("assistant_prefix"), e.getMessage());
    }

    @Test
    void constructorNeedsExactlyTheThreeRoles() {
        var ok = Map.of("system", "", "user", "", "assistant", "");
        assertThrows(IllegalArgumentException.class,
                () -> new ChatTemplate("", Map.of("user", "", "assistant", ""), ok, ""));
        assertThrows(IllegalArgumentException.class,
                () -> new ChatTemplate("", ok, Map.of("system", "", "user", "", "assistant", "", "tool", ""), ""));
        assertThrows(IllegalArgumentException.class, () -> new Message("tool", "x"));
    }

    /** Expected ids/labels built piece by piece: what is masked and what is learned, turn by turn. */
    @Test
    void encodeMasksEverythingButAssistantTurns() {
        ChatTemplate t = ChatTemplate.parse(Map.of(
                "system_prefix", "S", "system_suffix", "s",
                "user_prefix", "U", "user_suffix", "u",
                "assistant_prefix", "A", "assistant_suffix", "a"));
        var msgs = List.of(new Message("system", "sys"), new Message("user", "q1"), new Message("assistant", "r1"),
                new Message("user", "q2"), new Message("assistant", "r2"));
        var exp = new Expected();
        exp.masked(CharTokenizer.BOS);
        exp.masked("S" + "sys" + "s" + "U" + "q1" + "u" + "A");
        exp.learned("r1" + "a");
        exp.learned(CharTokenizer.EOS);
        exp.masked("U" + "q2" + "u" + "A");
        exp.learned("r2" + "a");
        exp.learned(CharTokenizer.EOS);
        ChatTemplate.Tokens got = t.encode(msgs, TOK);
        assertArrayEquals(exp.ids(), got.ids());
        assertArrayEquals(exp.labels(), got.labels());
    }

    @Test
    void suffixEndingInEosGetsNoSecondEos() {
        ChatTemplate t = ChatTemplate.parse(Map.of("user_prefix", "U", "user_suffix", "", "assistant_prefix", "A",
                "assistant_suffix", "<eos>"));
        var got = t.encode(List.of(new Message("user", "q"), new Message("assistant", "r")), TOK);
        assertArrayEquals(new long[] {1, CharTokenizer.id('U'), CharTokenizer.id('q'), CharTokenizer.id('A'),
                CharTokenizer.id('r'), 2}, got.ids());
        assertArrayEquals(new long[] {X, X, X, X, CharTokenizer.id('r'), 2}, got.labels());
    }

    @Test
    void bosTextReplacesTheBosIdAndTokenizerWithoutEosAddsNone() {
        ChatTemplate t = ChatTemplate.parse(Map.of("bos", "B", "assistant_prefix", "", "assistant_suffix", ""));
        var got = t.encode(List.of(new Message("assistant", "r")), new CharTokenizer(true, false));
        assertArrayEquals(new long[] {CharTokenizer.id('B'), CharTokenizer.id('r')}, got.ids());
        assertArrayEquals(new long[] {X, CharTokenizer.id('r')}, got.labels());
    }

    @Test
    void generationPromptMatchesTrainingIdsUpToTheAnswer() {
        ChatTemplate t = ChatTemplate.defaults();
        var history = List.of(new Message("user", "q1"), new Message("assistant", "r1"), new Message("user", "q2"));
        var full = new ArrayList<>(history);
        full.add(new Message("assistant", "r2"));
        long[] prompt = t.encodeForGeneration(history, TOK);
        long[] train = t.encode(full, TOK).ids();
        assertArrayEquals(java.util.Arrays.copyOf(train, prompt.length), prompt);
        assertEquals(CharTokenizer.id('r'), train[prompt.length]);
    }

    /** Builds expected ids and labels from labelled pieces. */
    static final class Expected {
        private final List<Long> ids = new ArrayList<>();
        private final List<Long> labels = new ArrayList<>();

        Expected masked(String s) {
            for (long id : CharTokenizer.ids(s)) {
                masked(id);
            }
            return this;
        }

        Expected masked(long id) {
            ids.add(id);
            labels.add(Example.IGNORE);
            return this;
        }

        Expected learned(String s) {
            for (long id : CharTokenizer.ids(s)) {
                learned(id);
            }
            return this;
        }

        Expected learned(long id) {
            ids.add(id);
            labels.add(id);
            return this;
        }

        long[] ids() {
            return ids.stream().mapToLong(Long::longValue).toArray();
        }

        long[] labels() {
            return labels.stream().mapToLong(Long::longValue).toArray();
        }
    }
}
