package dev.collie.runtime.data;

import dev.collie.runtime.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;

/**
 * Test tokenizer: one id per character (chars 0..255 map to 3 + c), pad = 0, bos = 1, eos = 2; the
 * literal texts {@code <pad>}, {@code <bos>}, {@code <eos>} map to their special ids, as a real
 * tokenizer's added tokens would.
 */
final class CharTokenizer implements Tokenizer {

    static final long PAD = 0;
    static final long BOS = 1;
    static final long EOS = 2;
    static final int VOCAB = 3 + 256;
    private static final List<String> SPECIALS = List.of("<pad>", "<bos>", "<eos>");

    private final boolean hasBos;
    private final boolean hasEos;

    CharTokenizer() {
        this(true, true);
    }

    CharTokenizer(boolean hasBos, boolean hasEos) {
        this.hasBos = hasBos;
        this.hasEos = hasEos;
    }

    static long id(char c) {
        return 3 + c;
    }

    /** Ids of {@code s}, one per char, no specials. */
    static long[] ids(String s) {
        long[] out = new long[s.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = id(s.charAt(i));
        }
        return out;
    }

    @Override
    public int vocabSize() {
        return VOCAB;
    }

    @Override
    public long[] encode(String text, boolean addBos) {
        var out = new java.util.ArrayList<Long>();
        if (addBos && hasBos) {
            out.add(BOS);
        }
        int i = 0;
        outer:
        while (i < text.length()) {
            for (int s = 0; s < SPECIALS.size(); s++) {
                if (text.startsWith(SPECIALS.get(s), i)) {
                    out.add((long) s);
                    i += SPECIALS.get(s).length();
                    continue outer;
                }
            }
            char c = text.charAt(i++);
            if (c > 255) {
                throw new IllegalArgumentException("test tokenizer handles chars 0..255 only");
            }
            out.add(id(c));
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    @Override
    public String decode(long[] ids, boolean skipSpecial) {
        StringBuilder sb = new StringBuilder();
        for (long id : ids) {
            if (id < 3) {
                if (!skipSpecial) {
                    sb.append(SPECIALS.get((int) id));
                }
            } else {
                sb.append((char) (id - 3));
            }
        }
        return sb.toString();
    }

    @Override
    public StreamDecoder streamDecoder() {
        return id -> decode(new long[] {id}, true);
    }

    @Override
    public OptionalLong bosId() {
        return hasBos ? OptionalLong.of(BOS) : OptionalLong.empty();
    }

    @Override
    public OptionalLong eosId() {
        return hasEos ? OptionalLong.of(EOS) : OptionalLong.empty();
    }

    @Override
    public OptionalLong padId() {
        return OptionalLong.of(PAD);
    }

    @Override
    public List<Path> files() {
        return List.of();
    }

    @Override
    public void close() {}
}
