package dev.collie.runtime.optim;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * Reader for {@code optim_golden.txt}, written by {@code src/test/python/adalomo_ref.py}. Floats
 * are stored as float32 bit patterns so that PyTorch's values arrive bit-exact.
 */
final class Golden {
    private final Map<String, float[]> floats = new HashMap<>();
    private final Map<String, int[]> ints = new HashMap<>();

    private static Golden instance;

    static synchronized Golden load() {
        if (instance == null) {
            instance = new Golden("optim_golden.txt");
        }
        return instance;
    }

    private Golden(String resource) {
        try (InputStream in = Golden.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("missing test resource " + resource);
            }
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
            for (String line; (line = r.readLine()) != null; ) {
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                String[] t = line.trim().split(" ");
                int count = Integer.parseInt(t[2]);
                if (t.length != count + 3) {
                    throw new IllegalStateException("bad record " + t[0] + ": " + (t.length - 3) + " values, header says " + count);
                }
                switch (t[1]) {
                    case "f" -> {
                        float[] v = new float[count];
                        for (int i = 0; i < count; i++) {
                            v[i] = Float.intBitsToFloat(Integer.parseUnsignedInt(t[i + 3], 16));
                        }
                        floats.put(t[0], v);
                    }
                    case "i" -> {
                        int[] v = new int[count];
                        for (int i = 0; i < count; i++) {
                            v[i] = Integer.parseInt(t[i + 3]);
                        }
                        ints.put(t[0], v);
                    }
                    default -> throw new IllegalStateException("bad type in record " + t[0]);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    float[] floats(String key) {
        float[] v = floats.get(key);
        if (v == null) {
            throw new IllegalArgumentException("no golden record " + key);
        }
        return v.clone();
    }

    float scalar(String key) {
        float[] v = floats(key);
        if (v.length != 1) {
            throw new IllegalArgumentException(key + " is not a scalar");
        }
        return v[0];
    }

    int[] ints(String key) {
        int[] v = ints.get(key);
        if (v == null) {
            throw new IllegalArgumentException("no golden record " + key);
        }
        return v.clone();
    }
}
