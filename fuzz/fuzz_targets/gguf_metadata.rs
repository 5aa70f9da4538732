//! GGUF files: arbitrary bytes read as GGUF metadata (candle's reader, as
//! the server reads a model file) and, when that succeeds, turned into a
//! vocabulary. A file that is not a usable model is an error, not a panic
//! or an abort.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cursor = std::io::Cursor::new(data);
    if let Ok(metadata) = quarry_generate::parse_gguf_metadata(&mut cursor, "fuzz.gguf") {
        let _ = quarry_generate::vocab_from_gguf(&metadata);
    }
});
