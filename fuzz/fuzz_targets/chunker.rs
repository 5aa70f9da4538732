//! The chunker on arbitrary text with arbitrary sizes, measured with the
//! default embedder's tokenizer as the engine does: every chunk is a piece
//! of the text, within the size, and together they cover all of its
//! non-blank content.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quarry_embed::Tokenizer;

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let source = quarry_models::DEFAULT_EMBED_MODEL.parse().unwrap();
        let dir = quarry_models::ModelCache::from_env()
            .fetch(&source, &quarry_embed::MODEL_FILES)
            .expect("the embedding model (quarry models fetch)");
        let mut t = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        t.with_padding(None);
        t.with_truncation(None).unwrap();
        t
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let size = 1 + data[0] as usize % 300;
    let overlap = data[1] as usize % size;
    let Ok(text) = std::str::from_utf8(&data[2..]) else {
        return;
    };
    let t = tokenizer();
    let chunks = quarry_engine::chunk::chunk_text(t, text, size, overlap);
    for c in &chunks {
        assert!(text.contains(c.as_str()), "a chunk that is not in the text");
        // A single word longer than `size` tokens is a chunk of its own.
        let tokens = t.encode(c.as_str(), false).unwrap().len();
        assert!(
            tokens <= size || !c.trim().contains(char::is_whitespace),
            "{tokens} > {size}"
        );
    }
    if !text.trim().is_empty() {
        assert!(!chunks.is_empty(), "non-blank text gave no chunk");
    }
});
