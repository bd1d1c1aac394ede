package dev.collie.runtime.tokenizer;

import static dev.collie.runtime.tokenizer.ByteTokenizerTest.escape;
import static dev.collie.runtime.tokenizer.ByteTokenizerTest.isWellFormed;
import static dev.collie.runtime.tokenizer.ByteTokenizerTest.streamAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.Random;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Against two hand-written tokenizer.json files shaped like the real ones: LLaMA-2 (SentencePiece
 * BPE, byte fallback, ▁ marker, Strip decoder) and GPT-2 (byte-level BPE).
 */
class HfTokenizerTest {

    static final long LLAMA_HELLO = 334; // "▁hello"
    static final long LLAMA_WORLD = 339; // "▁world"
    static final long GPT2_EOT = 269; // "<|endoftext|>"

    static final List<String> TEXTS =
            List.of(
                    "hello world",
                    "The quick brown fox, 42 times!",
                    "héllo wörld",
                    "I ❤ 🦙 and 日本語.",
                    "  leading, multiple   inner and trailing spaces  ",
                    " ",
                    "tabs\tand\nnewlines\n",
                    "");

    static HfTokenizer llama;
    static HfTokenizer gpt2;

    @BeforeAll
    static void load() throws URISyntaxException {
        llama = Tokenizers.load(resource("llama"));
        gpt2 = Tokenizers.load(resource("gpt2"));
    }

    @AfterAll
    static void close() {
        llama.close();
        gpt2.close();
    }

    static Path resource(String name) throws URISyntaxException {
        return Path.of(HfTokenizerTest.class.getResource("/tokenizers/" + name).toURI());
    }

    // ------------------------------------------------------------------ LLaMA

    @Test
    void llamaSpecialIdsAndVocabSize() {
        // bos/eos from tokenizer_config.json (object and string forms) win over config.json's
        // 7/8; pad is null there and in special_tokens_map.json, so config.json's 0 is used.
        assertEquals(OptionalLong.of(1), llama.bosId());
        assertEquals(OptionalLong.of(2), llama.eosId());
        assertEquals(OptionalLong.of(0), llama.padId());
        assertEquals(346, llama.vocabSize());
    }

    @Test
    void llamaAddsNoSpecialTokensUnlessAsked() {
        // The file's post-processor would prepend <s>; Collie turns that off and adds BOS itself.
        assertArrayEquals(new long[] {LLAMA_HELLO, LLAMA_WORLD}, llama.encode("hello world", false));
        assertArrayEquals(new long[] {1, LLAMA_HELLO, LLAMA_WORLD}, llama.encode("hello world", true));
        assertArrayEquals(new long[] {1}, llama.encode("", true));
    }

    @Test
    void llamaRoundTrips() {
        for (String text : TEXTS) {
            assertEquals(text, llama.decode(llama.encode(text, false), true), escape(text));
            assertEquals(text, llama.decode(llama.encode(text, true), true), escape(text));
        }
    }

    @Test
    void llamaEncodesUnknownCharactersAsBytes() {
        // 🦙 is F0 9F A6 99; not in the vocabulary, so byte fallback: ▁ then four byte pieces.
        assertArrayEquals(new long[] {259, 243, 162, 169, 156}, llama.encode("🦙", false));
    }

    @Test
    void llamaDecodeSkipsOrRendersSpecials() {
        long[] ids = {1, LLAMA_HELLO, LLAMA_WORLD, 2};
        assertEquals("hello world", llama.decode(ids, true));
        assertEquals("<s> hello world</s>", llama.decode(ids, false));
    }

    @Test
    void llamaStreamEqualsFullDecode() {
        for (String text : TEXTS) {
            long[] ids = append(llama.encode(text, true), 2);
            for (boolean skip : new boolean[] {true, false}) {
                assertEquals(llama.decode(ids, skip), streamAll(llama.streamDecoder(skip), ids), escape(text));
            }
        }
    }

    @Test
    void llamaStreamNeverEmitsPartialCharacters() {
        for (String text : TEXTS) {
            Tokenizer.StreamDecoder dec = llama.streamDecoder();
            for (long id : llama.encode(text, true)) {
                String chunk = dec.push(id);
                assertFalse(chunk.contains("\uFFFD"), escape(text));
                assertTrue(isWellFormed(chunk), escape(text));
            }
        }
        // The emoji arrives whole with its fourth byte piece; the spaces around it survive the
        // decoder's Strip step, which only applies to the very first token.
        Tokenizer.StreamDecoder dec = llama.streamDecoder();
        assertEquals("hello", dec.push(LLAMA_HELLO));
        assertEquals(" ", dec.push(259)); // "▁"
        for (long b : new long[] {243, 162, 169}) {
            assertEquals("", dec.push(b));
        }
        assertEquals("🦙", dec.push(156));
        assertEquals(" world", dec.push(LLAMA_WORLD));
    }

    @Test
    void llamaStreamEqualsFullDecodeOnRandomIds() {
        // Random pieces, specials, characters spelled as byte pieces, and junk bytes (invalid
        // UTF-8). Junk only starts a byte run: junk after a complete character in the same run
        // makes ByteFallback rewrite that character too, which no stream can follow (see
        // HfTokenizer.streamDecoder).
        Random rnd = new Random(11);
        for (int n = 0; n < 300; n++) {
            LongStream.Builder ids = LongStream.builder();
            boolean runMayStart = true;
            for (int unit = rnd.nextInt(20); unit > 0; unit--) {
                switch (rnd.nextInt(4)) {
                    case 0 -> { // an ordinary piece: ends any byte run
                        ids.add(259 + rnd.nextInt(346 - 259));
                        runMayStart = true;
                    }
                    case 1 -> ids.add(rnd.nextInt(3)); // <unk>, <s>, </s>
                    case 2 -> { // one character as byte pieces
                        String c = ByteTokenizerTest.randomText(rnd, 1);
                        for (byte b : c.getBytes(StandardCharsets.UTF_8)) {
                            ids.add((b & 0xFF) + 3);
                        }
                        runMayStart = false;
                    }
                    default -> {
                        if (runMayStart) { // 1-3 stray continuation bytes: never valid UTF-8
                            for (int k = 1 + rnd.nextInt(3); k > 0; k--) {
                                ids.add(0x80 + rnd.nextInt(0x40) + 3);
                            }
                            runMayStart = false;
                        }
                    }
                }
            }
            assertStreamAddsUp(llama, ids.add(LLAMA_WORLD).build().toArray());
        }
    }

    @Test
    void llamaLongStreamIsConsistent() {
        Random rnd = new Random(5);
        StringBuilder text = new StringBuilder();
        while (text.length() < 6000) {
            text.append(TEXTS.get(rnd.nextInt(TEXTS.size()))).append(' ');
        }
        long[] ids = llama.encode(text.toString(), false);
        assertTrue(ids.length > 2000, "only " + ids.length + " tokens");
        assertEquals(llama.decode(ids, true), streamAll(llama.streamDecoder(), ids));
        assertEquals(text.toString(), llama.decode(ids, true));
    }

    @Test
    void llamaFiles() throws URISyntaxException {
        Path dir = resource("llama");
        assertEquals(
                List.of(
                        dir.resolve("tokenizer.json"),
                        dir.resolve("tokenizer_config.json"),
                        dir.resolve("special_tokens_map.json")),
                llama.files());
    }

    // ------------------------------------------------------------------ GPT-2

    @Test
    void gpt2SpecialIdsFromConfigJson() {
        // No tokenizer_config.json: config.json's bos_token_id (an int) and eos_token_id (a list).
        assertEquals(OptionalLong.of(GPT2_EOT), gpt2.bosId());
        assertEquals(OptionalLong.of(GPT2_EOT), gpt2.eosId());
        assertEquals(OptionalLong.empty(), gpt2.padId());
        assertEquals(270, gpt2.vocabSize());
    }

    @Test
    void gpt2EncodesAndRoundTrips() {
        assertArrayEquals(new long[] {259, 264}, gpt2.encode("hello world", false));
        assertArrayEquals(new long[] {GPT2_EOT, 259, 264}, gpt2.encode("hello world", true));
        for (String text : TEXTS) {
            assertEquals(text, gpt2.decode(gpt2.encode(text, false), true), escape(text));
        }
    }

    @Test
    void gpt2DecodeSkipsOrRendersSpecials() {
        long[] ids = {259, 264, GPT2_EOT};
        assertEquals("hello world", gpt2.decode(ids, true));
        assertEquals("hello world<|endoftext|>", gpt2.decode(ids, false));
    }

    @Test
    void gpt2StreamEqualsFullDecodeAcrossMultiByteCharacters() {
        for (String text : TEXTS) {
            long[] ids = append(gpt2.encode(text, false), GPT2_EOT);
            Tokenizer.StreamDecoder dec = gpt2.streamDecoder();
            StringBuilder out = new StringBuilder();
            for (long id : ids) {
                String chunk = dec.push(id);
                assertFalse(chunk.contains("\uFFFD"), escape(text));
                assertTrue(isWellFormed(chunk), escape(text));
                out.append(chunk);
            }
            assertEquals(gpt2.decode(ids, true), out.toString(), escape(text));
            assertEquals(gpt2.decode(ids, false), streamAll(gpt2.streamDecoder(false), ids), escape(text));
        }
    }

    @Test
    void gpt2StreamEqualsFullDecodeOnRandomIds() {
        // Byte-level decoding is lossy UTF-8 over all bytes, so any ids at all must stream
        // exactly, once an ordinary character completes the text.
        Random rnd = new Random(13);
        for (int n = 0; n < 300; n++) {
            long[] ids = LongStream.concat(
                            rnd.longs(rnd.nextInt(25), 0, gpt2.vocabSize()),
                            LongStream.of('z' - 33)) // the byte-level piece for "z"
                    .toArray();
            assertStreamAddsUp(gpt2, ids);
        }
    }

    // ------------------------------------------------------------------ both

    @Test
    void noConfigFilesMeansNoSpecialIds() throws URISyntaxException {
        try (HfTokenizer bare = Tokenizers.load(resource("bare"))) {
            assertTrue(bare.bosId().isEmpty());
            assertTrue(bare.eosId().isEmpty());
            assertTrue(bare.padId().isEmpty());
            assertArrayEquals(bare.encode("hello", false), bare.encode("hello", true));
            assertEquals(List.of(resource("bare").resolve("tokenizer.json")), bare.files());
        }
    }

    @Test
    void closeFreesTheNativeTokenizer() throws URISyntaxException {
        HfTokenizer t = Tokenizers.load(resource("gpt2"));
        t.close();
        t.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> t.encode("hello", false));
    }

    private static void assertStreamAddsUp(HfTokenizer tok, long[] ids) {
        for (boolean skip : new boolean[] {true, false}) {
            assertEquals(
                    tok.decode(ids, skip),
                    streamAll(tok.streamDecoder(skip), ids),
                    "ids " + Arrays.toString(ids) + " skipSpecial=" + skip);
        }
    }

    private static long[] append(long[] ids, long id) {
        long[] out = Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = id;
        return out;
    }
}
