package dev.collie.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class ByteTokenizerTest {

    private final ByteTokenizer tok = new ByteTokenizer();

    @Test
    void layoutAndSpecialIds() {
        assertEquals(259, tok.vocabSize());
        assertEquals(1, tok.bosId().getAsLong());
        assertEquals(2, tok.eosId().getAsLong());
        assertEquals(0, tok.padId().getAsLong());
        assertTrue(tok.files().isEmpty());
        assertEquals(259, Tokenizers.byteLevel().vocabSize());
    }

    @Test
    void encodesUtf8BytesShiftedByThree() {
        assertArrayEquals(new long[] {'h' + 3, 'i' + 3}, tok.encode("hi", false));
        assertArrayEquals(new long[] {1, 'h' + 3, 'i' + 3}, tok.encode("hi", true));
        // é is C3 A9
        assertArrayEquals(new long[] {0xC3 + 3, 0xA9 + 3}, tok.encode("é", false));
        // The last id is byte 0xFF, which never occurs in valid UTF-8.
        assertEquals("\uFFFD", tok.decode(new long[] {258}, true));
        assertArrayEquals(new long[0], tok.encode("", false));
    }

    @Test
    void decodeRendersOrSkipsSpecials() {
        long[] ids = {1, 'a' + 3, 0, 'b' + 3, 2};
        assertEquals("ab", tok.decode(ids, true));
        assertEquals("<bos>a<pad>b<eos>", tok.decode(ids, false));
    }

    @Test
    void invalidUtf8BecomesReplacementCharacters() {
        long e2 = 0xE2 + 3;
        assertEquals("\uFFFDA", tok.decode(new long[] {e2, 'A' + 3}, true));
        assertEquals("A\uFFFD", tok.decode(new long[] {'A' + 3, e2}, true)); // truncated at the end
        assertEquals("\uFFFD", tok.decode(new long[] {0x80 + 3}, true)); // lone continuation byte
        // A rendered special token ends the byte run, so the half character is replaced before it.
        assertEquals("\uFFFD<eos>", tok.decode(new long[] {e2, 2}, false));
    }

    @Test
    void unknownIdsAreIgnored() {
        assertEquals("a", tok.decode(new long[] {-1, 'a' + 3, 259, 10_000}, false));
    }

    @Test
    void roundTripsRandomUnicode() {
        Random rnd = new Random(42);
        for (int n = 0; n < 500; n++) {
            String s = randomText(rnd, rnd.nextInt(40));
            long[] ids = tok.encode(s, n % 2 == 0);
            assertEquals(s, tok.decode(ids, true), "round trip of " + escape(s));
            assertEquals(s, streamAll(tok.streamDecoder(), ids), "stream of " + escape(s));
        }
    }

    @Test
    void streamDecoderNeverSplitsACharacter() {
        Random rnd = new Random(7);
        for (int n = 0; n < 200; n++) {
            String s = randomText(rnd, 1 + rnd.nextInt(30));
            Tokenizer.StreamDecoder dec = tok.streamDecoder();
            for (long id : tok.encode(s, false)) {
                String chunk = dec.push(id);
                assertFalse(chunk.contains("\uFFFD"), "replacement char emitted for " + escape(s));
                assertTrue(isWellFormed(chunk), "split surrogate pair in chunk of " + escape(s));
            }
        }
        // The 4 bytes of an emoji: nothing, nothing, nothing, then the whole character.
        Tokenizer.StreamDecoder dec = tok.streamDecoder();
        long[] ids = tok.encode("🦙", false);
        assertEquals(4, ids.length);
        assertEquals("", dec.push(ids[0]));
        assertEquals("", dec.push(ids[1]));
        assertEquals("", dec.push(ids[2]));
        assertEquals("🦙", dec.push(ids[3]));
    }

    @Test
    void streamMatchesDecodeOnArbitraryIds() {
        // Random ids, invalid UTF-8 and specials included; ending with an ASCII byte completes
        // the text, after which the stream must have produced exactly decode(ids).
        Random rnd = new Random(3);
        for (int n = 0; n < 500; n++) {
            long[] ids = new long[1 + rnd.nextInt(30)];
            for (int i = 0; i < ids.length - 1; i++) {
                ids[i] = rnd.nextInt(8) == 0 ? rnd.nextInt(3) : 3 + rnd.nextInt(256);
            }
            ids[ids.length - 1] = 'z' + 3;
            for (boolean skip : new boolean[] {true, false}) {
                assertEquals(tok.decode(ids, skip), streamAll(tok.streamDecoder(skip), ids));
            }
        }
    }

    static String streamAll(Tokenizer.StreamDecoder dec, long[] ids) {
        StringBuilder sb = new StringBuilder();
        for (long id : ids) {
            sb.append(dec.push(id));
        }
        return sb.toString();
    }

    /** Code points from ASCII, Latin, CJK, and emoji (supplementary) ranges; no lone surrogates. */
    static String randomText(Random rnd, int codePoints) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < codePoints; i++) {
            int cp =
                    switch (rnd.nextInt(5)) {
                        case 0 -> 0x20 + rnd.nextInt(0x5F);
                        case 1 -> 0xA0 + rnd.nextInt(0x700);
                        case 2 -> 0x4E00 + rnd.nextInt(0x5000);
                        case 3 -> 0x1F300 + rnd.nextInt(0x300);
                        default -> "\n\t ".charAt(rnd.nextInt(3));
                    };
            sb.appendCodePoint(cp);
        }
        return sb.toString();
    }

    static boolean isWellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
                    return false;
                }
                i++;
            } else if (Character.isLowSurrogate(c)) {
                return false;
            }
        }
        return true;
    }

    static String escape(String s) {
        StringBuilder sb = new StringBuilder();
        s.codePoints().forEach(cp -> sb.append(cp < 0x80 ? Character.toString(cp) : String.format("\\u{%X}", cp)));
        return sb.toString();
    }
}
