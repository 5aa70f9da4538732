//! History page tokens from clients: any string either parses to the
//! record it was issued for (only when issued with this secret and filter)
//! or is refused; a token issued here always parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_core::RecordId;
use quarry_engine::{page_token, parse_page_token, RecordFilter};

const SECRET: &[u8] = b"fuzzing secret of a data directory";

fuzz_target!(|data: &[u8]| {
    let filter = RecordFilter {
        collection: Some("kb".into()),
        ..Default::default()
    };
    if let Ok(token) = std::str::from_utf8(data) {
        if let Ok(Some(id)) = parse_page_token(SECRET, &filter, token) {
            // Accepted only if it is exactly what the server would issue.
            assert_eq!(page_token(SECRET, &filter, id), token);
        }
    }
    if data.len() >= 8 {
        let id = RecordId(u64::from_le_bytes(data[..8].try_into().unwrap()));
        let token = page_token(SECRET, &filter, id);
        assert_eq!(parse_page_token(SECRET, &filter, &token).unwrap(), Some(id));
    }
});
