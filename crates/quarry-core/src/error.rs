//! The validation error every layer uses for bad client input.
//!
//! It names the field and the rule that was broken so that the gRPC edge can
//! return INVALID_ARGUMENT with a message a client can act on.

/// Client input that breaks a rule. `field` is the request field's name as
/// the client sees it (for example `settings.chunk_size`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidArgument {
    /// The offending field, as named in the public API.
    pub field: String,
    /// What is wrong with it, including the limit where there is one.
    pub reason: String,
}

impl InvalidArgument {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Checks a free-text field a request cannot do without (a query, a
    /// question): not blank, at most `max_bytes`, no NUL.
    pub fn check_text(field: &str, text: &str, max_bytes: usize) -> Result<(), Self> {
        if is_blank(text) {
            return Err(Self::new(field, BLANK));
        }
        if text.len() > max_bytes {
            return Err(Self::new(
                field,
                format!("is {} bytes; the limit is {max_bytes} bytes", text.len()),
            ));
        }
        if text.contains('\0') {
            return Err(Self::new(field, "must not contain NUL characters"));
        }
        Ok(())
    }
}

/// The rule a blank text breaks, as [`InvalidArgument::check_text`] words it.
pub const BLANK: &str = "must not be empty or only whitespace";

/// Whether `text` shows nothing: empty, or only whitespace and invisible
/// format characters (zero-width space, joiners, word joiner, byte-order
/// mark, soft hyphen), which a user cannot see and a model cannot read.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || matches!(
                c,
                '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}'
            )
    })
}

/// At most `max_chars` characters of `text`, with "…" when cut: client
/// input quoted back in an error message stays short.
pub fn capped(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
