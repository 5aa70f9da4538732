//! What a document must be before the engine takes it: the limits, the
//! checks (each refusal names the field and the limit), the line-ending
//! normalisation and the content hash that makes an unchanged document
//! free to send again.

use quarry_core::{Document, InvalidArgument, MetaValue};
use sha2::{Digest, Sha256};

/// Limits on documents sent to Upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Most documents in one request.
    pub max_documents: usize,
    /// Longest document id, in bytes.
    pub max_id_bytes: usize,
    /// Longest title, in bytes.
    pub max_title_bytes: usize,
    /// Longest text, in bytes.
    pub max_text_bytes: usize,
    /// Most metadata keys per document.
    pub max_metadata_keys: usize,
    /// Longest metadata key or string value (or list element), in bytes.
    pub max_metadata_value_bytes: usize,
    /// Most elements in a string-list value.
    pub max_list_items: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_documents: 1000,
            max_id_bytes: 512,
            max_title_bytes: 4096,
            max_text_bytes: 4 * 1024 * 1024,
            max_metadata_keys: 64,
            max_metadata_value_bytes: 4096,
            max_list_items: 256,
        }
    }
}

fn too_long(field: String, len: usize, limit: usize) -> InvalidArgument {
    InvalidArgument::new(field, format!("is {len} bytes; the limit is {limit} bytes"))
}

/// Checks a document against the limits; `at` is its request field
/// (e.g. `documents[3]`).
pub fn validate_document(
    doc: &Document,
    at: &str,
    limits: &DocumentLimits,
) -> Result<(), InvalidArgument> {
    if doc.id.is_empty() {
        return Err(InvalidArgument::new(
            format!("{at}.id"),
            "must not be empty",
        ));
    }
    if doc.id.len() > limits.max_id_bytes {
        return Err(too_long(
            format!("{at}.id"),
            doc.id.len(),
            limits.max_id_bytes,
        ));
    }
    if doc.id.chars().any(char::is_control) {
        return Err(InvalidArgument::new(
            format!("{at}.id"),
            "must not contain control characters",
        ));
    }
    if doc.title.len() > limits.max_title_bytes {
        return Err(too_long(
            format!("{at}.title"),
            doc.title.len(),
            limits.max_title_bytes,
        ));
    }
    if doc.text.contains('\0') || doc.title.contains('\0') {
        return Err(InvalidArgument::new(
            format!("{at}.text"),
            "must not contain NUL characters",
        ));
    }
    if quarry_core::error::is_blank(&doc.text) {
        return Err(InvalidArgument::new(
            format!("{at}.text"),
            quarry_core::error::BLANK,
        ));
    }
    if doc.text.len() > limits.max_text_bytes {
        return Err(too_long(
            format!("{at}.text"),
            doc.text.len(),
            limits.max_text_bytes,
        ));
    }
    if doc.metadata.len() > limits.max_metadata_keys {
        return Err(InvalidArgument::new(
            format!("{at}.metadata"),
            format!(
                "has {} keys; the limit is {}",
                doc.metadata.len(),
                limits.max_metadata_keys
            ),
        ));
    }
    for (key, value) in &doc.metadata {
        // The key is client input quoted back: only its start.
        let field = format!("{at}.metadata[{:?}]", quarry_core::error::capped(key, 64));
        if key.is_empty() || key.len() > limits.max_metadata_value_bytes {
            return Err(InvalidArgument::new(
                field,
                format!(
                    "keys must be 1 to {} bytes",
                    limits.max_metadata_value_bytes
                ),
            ));
        }
        // NUL is refused in keys and strings as it is in text: stored
        // strings must survive every client and log line intact.
        let nul = match value {
            MetaValue::String(s) => s.contains('\0'),
            MetaValue::StringList(items) => items.iter().any(|i| i.contains('\0')),
            _ => false,
        };
        if key.contains('\0') || nul {
            return Err(InvalidArgument::new(
                field,
                "must not contain NUL characters (key or value)",
            ));
        }
        match value {
            MetaValue::String(s) if s.len() > limits.max_metadata_value_bytes => {
                return Err(too_long(field, s.len(), limits.max_metadata_value_bytes));
            }
            MetaValue::Double(d) if !d.is_finite() => {
                return Err(InvalidArgument::new(field, "must be a finite number"));
            }
            MetaValue::StringList(items) => {
                if items.len() > limits.max_list_items {
                    return Err(InvalidArgument::new(
                        field,
                        format!(
                            "has {} items; the limit is {}",
                            items.len(),
                            limits.max_list_items
                        ),
                    ));
                }
                if let Some(long) = items
                    .iter()
                    .find(|i| i.len() > limits.max_metadata_value_bytes)
                {
                    return Err(too_long(field, long.len(), limits.max_metadata_value_bytes));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Line endings become `\n` so that the same text hashes the same from any
/// platform.
pub(crate) fn normalise(mut doc: Document) -> Document {
    if doc.text.contains('\r') {
        doc.text = doc.text.replace("\r\n", "\n").replace('\r', "\n");
    }
    if doc.title.contains('\r') {
        doc.title = doc.title.replace("\r\n", "\n").replace('\r', "\n");
    }
    doc
}

/// Hex SHA-256 of the document's title, text and metadata (canonical JSON:
/// metadata keys are ordered).
pub fn content_hash(doc: &Document) -> String {
    let canonical =
        serde_json::to_vec(&(&doc.title, &doc.text, &doc.metadata)).expect("serialisable");
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
