//! The Security section: API keys, TLS, and how records are kept (the
//! record key read and checked here; the key never appears in an error).

use std::path::PathBuf;

use quarry_store::RecordKey;
use serde::Deserialize;

use super::{section, ConfigError, TlsFiles};

section! {
/// `quarry serve` settings: API keys, TLS, and how records are kept.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
#[command(next_help_heading = "Security")]
pub struct SecurityArgs {
    /// The API keys file (hashes, roles, allow-lists; `quarry keys create`
    /// writes it). Required unless --no-auth.
    #[arg(long, env = "QUARRY_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,

    /// Serve without API keys: every caller may do everything. Only for
    /// local development; the server logs a warning.
    #[arg(long, env = "QUARRY_NO_AUTH")]
    pub no_auth: bool,

    /// TLS: the server's certificate chain (PEM). With --tls-key, the
    /// server speaks only TLS.
    #[arg(long, env = "QUARRY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS: the server's private key (PEM).
    #[arg(long, env = "QUARRY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// mTLS: clients must present a certificate signed by this CA (PEM).
    #[arg(long, env = "QUARRY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Store Ask records with e-mail addresses, card numbers and phone
    /// numbers replaced by [email], [card] and [phone] (question, answer
    /// and prompt; the streamed answer is unchanged).
    #[arg(long, env = "QUARRY_REDACT_RECORDS")]
    pub redact_records: bool,

    /// Encrypt stored records (XChaCha20-Poly1305) with the 32-byte key in
    /// this file (64 hex digits). Or set QUARRY_RECORD_KEY to the digits.
    /// A data directory whose records are encrypted needs the same key.
    #[arg(long, env = "QUARRY_RECORD_KEY_FILE")]
    pub record_key_file: Option<PathBuf>,
}
}

/// The Security section, checked.
#[derive(Debug, Clone)]
pub(super) struct Security {
    pub keys_file: Option<PathBuf>,
    pub no_auth: bool,
    pub tls: Option<TlsFiles>,
    pub redact_records: bool,
    pub record_key: Option<RecordKey>,
}

impl SecurityArgs {
    /// File paths relative to the file's folder.
    pub(super) fn rebase(&mut self, rebase: impl Fn(PathBuf) -> PathBuf) {
        for path in [
            &mut self.keys_file,
            &mut self.tls_cert,
            &mut self.tls_key,
            &mut self.tls_client_ca,
            &mut self.record_key_file,
        ] {
            *path = path.take().map(&rebase);
        }
    }

    pub(super) fn resolve(self) -> Result<Security, ConfigError> {
        if self.keys_file.is_some() && self.no_auth {
            return Err(ConfigError::Invalid {
                setting: "--no-auth",
                reason: "is set together with --keys-file; choose one".into(),
            });
        }
        let tls = match (self.tls_cert, self.tls_key, self.tls_client_ca) {
            (Some(cert), Some(key), client_ca) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "--tls-cert",
                    reason: "--tls-cert and --tls-key go together (and --tls-client-ca needs them)"
                        .into(),
                })
            }
        };
        let record_key = match (
            self.record_key_file,
            std::env::var("QUARRY_RECORD_KEY").ok(),
        ) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some(
                    RecordKey::from_hex(&text).map_err(|reason| ConfigError::Invalid {
                        setting: "--record-key-file",
                        reason,
                    })?,
                )
            }
            (None, Some(text)) if !text.is_empty() => Some(RecordKey::from_hex(&text).map_err(
                |reason| ConfigError::Invalid {
                    setting: "QUARRY_RECORD_KEY",
                    reason,
                },
            )?),
            _ => None,
        };
        Ok(Security {
            keys_file: self.keys_file,
            no_auth: self.no_auth,
            tls,
            redact_records: self.redact_records,
            record_key,
        })
    }
}
