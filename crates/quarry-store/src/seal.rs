//! Encryption at rest of prompt/response records (optional): each record
//! is sealed with XChaCha20-Poly1305 (RustCrypto) under a 32-byte key the
//! operator provides, with a random 24-byte nonce stored in front of it.
//!
//! The data directory remembers whether its records are sealed and a
//! sealed check value: opening with a wrong key, without the key, or with
//! a key over plaintext records fails at once with a message, instead of
//! ever returning garbage or mixing plaintext and sealed records.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{Result, StoreError};

const NONCE: usize = 24;
/// What the check value holds once unsealed.
const CHECK: &[u8] = b"quarry records key check v1";

/// A records key.
#[derive(Clone)]
pub struct RecordKey(XChaCha20Poly1305);

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

impl RecordKey {
    /// A key from 64 hex digits (32 bytes).
    pub fn from_hex(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a records key is 64 hex digits (32 bytes)".into());
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits"))
            .collect();
        Ok(Self(
            XChaCha20Poly1305::new_from_slice(&bytes).expect("32 bytes"),
        ))
    }

    /// Seals `plain`: nonce ++ ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| StoreError::Corrupt(format!("no random nonce: {e}")))?;
        let sealed = self
            .0
            .encrypt(XNonce::from_slice(&nonce), plain)
            .map_err(|_| StoreError::Corrupt("sealing a record failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// Opens a sealed value; a wrong key or damaged bytes are an error.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE {
            return Err(StoreError::Corrupt("a sealed record is too short".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE);
        self.0
            .decrypt(XNonce::from_slice(nonce), body)
            .map_err(|_| StoreError::Corrupt("a sealed record does not open with this key".into()))
    }

    /// A new check value for this key.
    pub fn check_value(&self) -> Result<Vec<u8>> {
        self.seal(CHECK)
    }

    /// Whether `value` was made by [`check_value`](Self::check_value)
    /// with this key.
    pub fn matches(&self, value: &[u8]) -> bool {
        self.open(value).is_ok_and(|v| v == CHECK)
    }
}
