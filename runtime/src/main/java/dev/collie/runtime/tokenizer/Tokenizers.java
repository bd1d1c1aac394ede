package dev.collie.runtime.tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;

/** Entry points for obtaining a {@link Tokenizer}. */
public final class Tokenizers {

    private Tokenizers() {}

    /**
     * The Hugging Face tokenizer of a checkpoint directory: its {@code tokenizer.json}, with the
     * special tokens named by the config files beside it (see {@link HfTokenizer}).
     *
     * @throws IllegalArgumentException if the directory has no tokenizer.json
     * @throws TokenizerException if a tokenizer file is malformed
     */
    public static HfTokenizer load(Path checkpointDir) {
        Path file = checkpointDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            String why =
                    Files.isDirectory(checkpointDir) ? "has no tokenizer.json" : "is not a directory";
            throw new IllegalArgumentException(
                    "cannot load a tokenizer: " + checkpointDir + " " + why
                            + " (a Hugging Face tokenizer.json is required; SentencePiece-only"
                            + " tokenizer.model checkpoints must be converted first)");
        }
        return HfTokenizer.open(file);
    }

    /** The built-in byte-level tokenizer (259 ids: 3 specials and 256 bytes). */
    public static Tokenizer byteLevel() {
        return new ByteTokenizer();
    }
}
