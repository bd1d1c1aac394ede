package dev.collie.runtime.tokenizer;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;

/**
 * One id per UTF-8 byte, for models trained from scratch: {@code 0 = <pad>}, {@code 1 = <bos>},
 * {@code 2 = <eos>}, then byte {@code b} (0..255) is id {@code b + 3}; 259 ids in all.
 *
 * <p>Stateless and thread-safe; {@link #close()} does nothing.
 */
public final class ByteTokenizer implements Tokenizer {

    public static final int PAD_ID = 0;
    public static final int BOS_ID = 1;
    public static final int EOS_ID = 2;
    /** Id of byte 0; byte {@code b} is {@code BYTE_OFFSET + b}. */
    public static final int BYTE_OFFSET = 3;
    public static final int VOCAB_SIZE = BYTE_OFFSET + 256;

    private static final String[] SPECIAL_NAMES = {"<pad>", "<bos>", "<eos>"};

    public ByteTokenizer() {}

    @Override
    public int vocabSize() {
        return VOCAB_SIZE;
    }

    @Override
    public long[] encode(String text, boolean addBos) {
        // Unpaired surrogates become '?' here, as in any Java UTF-8 encoding; there is no byte
        // sequence that would round-trip them.
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int start = addBos ? 1 : 0;
        long[] ids = new long[start + bytes.length];
        if (addBos) {
            ids[0] = BOS_ID;
        }
        for (int i = 0; i < bytes.length; i++) {
            ids[start + i] = (bytes[i] & 0xFF) + BYTE_OFFSET;
        }
        return ids;
    }

    /**
     * Unknown ids (negative or {@code >= vocabSize()}, e.g. from a model whose embedding table was
     * padded past the vocabulary) are ignored, as the Hugging Face tokenizers do.
     */
    @Override
    public String decode(long[] ids, boolean skipSpecial) {
        // Same code path as streaming, so decode(all) and the concatenated stream always agree.
        Utf8Stream stream = new Utf8Stream(skipSpecial);
        StringBuilder out = new StringBuilder(ids.length);
        for (long id : ids) {
            out.append(stream.push(id));
        }
        out.append(stream.finish());
        return out.toString();
    }

    /** A stream decoder that drops special tokens, as generated text wants. */
    @Override
    public StreamDecoder streamDecoder() {
        return streamDecoder(true);
    }

    /**
     * A stream decoder whose concatenated output equals {@code decode(ids, skipSpecial)} once the
     * last character is complete (a trailing incomplete UTF-8 sequence is held back, never
     * emitted as a replacement character).
     */
    public StreamDecoder streamDecoder(boolean skipSpecial) {
        return new Utf8Stream(skipSpecial)::push;
    }

    @Override
    public OptionalLong bosId() {
        return OptionalLong.of(BOS_ID);
    }

    @Override
    public OptionalLong eosId() {
        return OptionalLong.of(EOS_ID);
    }

    @Override
    public OptionalLong padId() {
        return OptionalLong.of(PAD_ID);
    }

    @Override
    public List<Path> files() {
        return List.of();
    }

    @Override
    public void close() {}

    @Override
    public String toString() {
        return "ByteTokenizer[vocabSize=" + VOCAB_SIZE + "]";
    }

    /**
     * Incremental UTF-8 decoding over a JDK {@link CharsetDecoder}. The JDK decoder is built for
     * streaming: with {@code endOfInput=false} it leaves a truncated trailing sequence unconsumed,
     * and it replaces malformed input the same way whether the bytes arrive at once or one by
     * one. That is what makes stream output identical to {@link #decode}.
     */
    private static final class Utf8Stream {
        private final boolean skipSpecial;
        private final CharsetDecoder decoder =
                StandardCharsets.UTF_8
                        .newDecoder()
                        .onMalformedInput(CodingErrorAction.REPLACE)
                        .onUnmappableCharacter(CodingErrorAction.REPLACE);
        // Pending bytes of an incomplete character: at most 3, plus the byte being added.
        private final ByteBuffer pending = ByteBuffer.allocate(8);
        // Each byte yields at most 2 chars (a replacement char for a pending prefix, then itself);
        // finish() may add one more for the flushed prefix.
        private final CharBuffer chars = CharBuffer.allocate(16);

        Utf8Stream(boolean skipSpecial) {
            this.skipSpecial = skipSpecial;
        }

        String push(long id) {
            if (id >= BYTE_OFFSET && id < VOCAB_SIZE) {
                pending.put((byte) (id - BYTE_OFFSET));
                return drain(false);
            }
            if (id >= 0 && id < BYTE_OFFSET && !skipSpecial) {
                // A rendered special token ends any byte run, as in decode(): flush it first.
                return finish() + SPECIAL_NAMES[(int) id];
            }
            return ""; // skipped special, or unknown id
        }

        /** Ends the byte run: an incomplete trailing sequence becomes U+FFFD. */
        String finish() {
            String text = drain(true);
            decoder.flush(chars);
            decoder.reset();
            chars.flip();
            text += chars.toString();
            chars.clear();
            return text;
        }

        private String drain(boolean endOfInput) {
            pending.flip();
            decoder.decode(pending, chars, endOfInput);
            pending.compact();
            chars.flip();
            String text = chars.toString();
            chars.clear();
            return text;
        }
    }
}
