package dev.collie.runtime.data;

import dev.collie.runtime.tokenizer.Tokenizer;

/**
 * How {@link JsonlExamples} checks and shapes rows.
 *
 * @param vocabSize the model's vocabulary size: every id and every label other than -100 must lie in
 *     {@code [0, vocabSize)} (the model's embedding table may be larger than the tokenizer's vocabulary,
 *     never smaller)
 * @param maxLength the longest row, in tokens, the model is trained on
 * @param truncate what to do with longer rows: {@code true} keeps their first {@code maxLength} tokens
 *     (and counts them in the stats); {@code false} rejects them with a {@link DataError}
 */
public record FormatOptions(int vocabSize, int maxLength, boolean truncate) {

    public FormatOptions {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("vocabSize must be positive, got " + vocabSize);
        }
        if (maxLength <= 0) {
            throw new IllegalArgumentException("maxLength must be positive, got " + maxLength);
        }
    }

    /** The tokenizer's vocabulary, truncation on. */
    public static FormatOptions of(Tokenizer tok, int maxLength) {
        return new FormatOptions(tok.vocabSize(), maxLength, true);
    }
}
