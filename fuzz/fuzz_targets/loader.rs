//! The bulk loader's parsers on arbitrary bytes: a JSON-lines record (with
//! BEIR's and custom field names) and a whole file as text, Markdown or
//! HTML. Either a document or an error message, never a panic.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../src/cli/ingest/sources.rs"]
mod sources;

use sources::{file_document, json_record, Fields, FileKind, Input};

fuzz_target!(|data: &[u8]| {
    let beir = Fields {
        id: "id".into(),
        title: "title".into(),
        text: "text".into(),
        metadata: "metadata".into(),
    };
    let custom = Fields {
        id: "doc".into(),
        title: "heading".into(),
        text: "body".into(),
        metadata: "meta".into(),
    };
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            for fields in [&beir, &custom] {
                let _ = json_record(line, fields);
            }
        }
    }
    let input = Input {
        path: PathBuf::from("corpus/page.html"),
        id: "page.html".into(),
        size: data.len() as u64,
    };
    for kind in [FileKind::Text, FileKind::Markdown, FileKind::Html] {
        if let Ok(doc) = file_document(&input, kind, data) {
            assert_eq!(doc.id, "page.html");
        }
    }
});
