package dev.collie.runtime.checkpoint;

import static dev.collie.runtime.checkpoint.TestData.assertUserMessage;
import static dev.collie.runtime.checkpoint.TestData.craft;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Each case is a hand-made malformed file that must be refused with a precise user-facing message. */
class SafetensorsValidationTest {

    @TempDir
    Path tmp;

    private CheckpointException refuse(Path file) {
        return assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file).close());
    }

    @Test
    void validCraftedFileOpens() throws Exception {
        // Guards the helper: the malformed cases below differ from this only in the defect.
        Path file = craft(tmp.resolve("ok.safetensors"),
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"k\":\"v\"}}", 8);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(1, f.tensors().size());
            assertEquals("v", f.metadata().get("k"));
        }
    }

    @Test
    void fileShorterThanLengthPrefix() throws Exception {
        Path file = Files.write(tmp.resolve("short.safetensors"), new byte[] {1, 2, 3, 4, 5});
        assertUserMessage(refuse(file), file, null, "too short");
    }

    @Test
    void headerLongerThanFile() throws Exception {
        Path file = craft(tmp.resolve("len.safetensors"), "{}".getBytes(StandardCharsets.UTF_8), 1000, 0);
        assertUserMessage(refuse(file), file, null, "header length 1000 exceeds the file size");
    }

    @Test
    void headerAboveSizeCap() throws Exception {
        Path file = craft(tmp.resolve("cap.safetensors"), "{}".getBytes(StandardCharsets.UTF_8), 100_000_001L, 0);
        assertUserMessage(refuse(file), file, null, "exceeds the limit");
    }

    @Test
    void headerLengthAboveSignedRange() throws Exception {
        Path file = craft(tmp.resolve("u64.safetensors"), "{}".getBytes(StandardCharsets.UTF_8), -1L, 0);
        assertUserMessage(refuse(file), file, null, "18446744073709551615");
    }

    @Test
    void headerNotUtf8() throws Exception {
        byte[] header = {'{', '"', (byte) 0xC3, (byte) 0x28, '"', ':', '1', '}'};
        Path file = craft(tmp.resolve("utf.safetensors"), header, header.length, 0);
        assertUserMessage(refuse(file), file, null, "not valid UTF-8");
    }

    @Test
    void missingFile() {
        Path file = tmp.resolve("absent.safetensors");
        assertUserMessage(refuse(file), file, null, "no such file");
    }

    @Test
    void directoryInsteadOfFile() {
        assertUserMessage(refuse(tmp), tmp, null, "is a directory");
    }

    static Stream<Arguments> badHeaders() {
        return Stream.of(
                // name, header, data bytes, tensor named in the error (or null), message fragment
                Arguments.of("not-json", "{nope", 0, null, "invalid JSON in header at line 1, column 2"),
                Arguments.of("array", "[1,2]", 0, null, "header is not a JSON object"),
                Arguments.of("empty", "        ", 0, null, "header is not a JSON object"),
                Arguments.of("trailing", "{} {}", 0, null, "invalid JSON in header"),
                Arguments.of("duplicate",
                        "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                        2, null, "Duplicate field 'a'"),
                Arguments.of("entry-not-object", "{\"a\":[1]}", 0, "a", "not a JSON object"),
                Arguments.of("no-dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "a", "'dtype'"),
                Arguments.of("unknown-dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                        "a", "unknown dtype 'F8_E4M3'"),
                Arguments.of("no-shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "a", "'shape'"),
                Arguments.of("negative-dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                        "a", "shape dimension must be a non-negative integer"),
                Arguments.of("fractional-dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                        "a", "shape dimension must be a non-negative integer"),
                Arguments.of("huge-dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
                        "a", "shape dimension must be a non-negative integer"),
                Arguments.of("numel-overflow",
                        "{\"a\":{\"dtype\":\"U8\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", 4,
                        "a", "too many elements"),
                Arguments.of("bytes-overflow",
                        "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,4]}}", 4,
                        "a", "too many elements"),
                Arguments.of("no-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "a", "'data_offsets'"),
                Arguments.of("three-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                        "a", "'data_offsets'"),
                Arguments.of("negative-offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                        "a", "data_offsets begin must be a non-negative integer"),
                Arguments.of("begin-after-end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                        "a", "begin 8 is after end 4"),
                Arguments.of("past-data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                        "a", "past the end of the data section (4 bytes)"),
                Arguments.of("size-mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                        "a", "span 8 bytes but F32 [3] needs 12"),
                Arguments.of("overlap",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        12, "b", "overlaps tensor 'a'"),
                Arguments.of("overlap-unsorted",
                        "{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]},\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
                        10, "b", "overlaps tensor 'a'"),
                Arguments.of("metadata-not-object", "{\"__metadata__\":[\"x\"]}", 0, null, "__metadata__ must be an object"),
                Arguments.of("metadata-not-string", "{\"__metadata__\":{\"step\":3}}", 0, null, "'step' is not a string"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badHeaders")
    void malformedHeaderIsRefused(String name, String header, int dataLen, String tensor, String fragment) throws Exception {
        Path file = craft(tmp.resolve(name + ".safetensors"), header, dataLen);
        assertUserMessage(refuse(file), file, tensor, fragment);
    }
}
