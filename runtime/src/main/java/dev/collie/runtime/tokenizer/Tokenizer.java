package dev.collie.runtime.tokenizer;

import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;

/**
 * Text to token ids and back. Implementations: {@code HfTokenizer} (a Hugging Face tokenizer.json,
 * through DJL's binding of the Rust tokenizers library) and {@code ByteTokenizer} (one id per UTF-8
 * byte plus a few specials, for models trained from scratch).
 */
public interface Tokenizer extends AutoCloseable {

    /** Number of ids the tokenizer can produce (the model's vocabulary must be at least this). */
    int vocabSize();

    /** Ids of {@code text}; with {@code addBos} the beginning-of-sequence id first (if the tokenizer has one). Never adds EOS. */
    long[] encode(String text, boolean addBos);

    /** Text of {@code ids}; special tokens are dropped when {@code skipSpecial}. */
    String decode(long[] ids, boolean skipSpecial);

    /** A decoder for streaming generation: feed ids one at a time, get the text they complete. */
    StreamDecoder streamDecoder();

    OptionalLong bosId();

    OptionalLong eosId();

    OptionalLong padId();

    /** Files that define this tokenizer, copied into saved checkpoints (empty for built-in ones). */
    List<Path> files();

    @Override
    void close();

    /** Incremental decoding: text appears once the bytes of a character are complete. */
    interface StreamDecoder {
        /** @return the new text that {@code id} completes, possibly "" */
        String push(long id);
    }
}
