//! The server's configuration: command-line flags, each also an environment
//! variable `QUARRY_*`, over an optional TOML file, over defaults.
//!
//! Precedence is flag or environment variable, then the file, then the
//! default, so a deployment can ship a file and override one value with an
//! environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_embed::QueueConfig;
use quarry_engine::{
    AskConfig, DocumentLimits, EmbedLimits, EngineConfig, EvidenceLayout, GroundingConfig,
    IndexConfig, SearchLimits,
};
use quarry_models::{ModelCache, ModelSource};
mod args;

pub use args::{AskArgs, EmbedArgs, LimitArgs, SecurityArgs, ServeArgs, ServerArgs, StorageArgs};

/// Default listen address: loopback only, a safe default for a server that
/// holds private documents. Use 0.0.0.0:50051 to accept remote clients.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "quarry-data";
/// Default largest gRPC message, both directions: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
const MIN_MESSAGE_BYTES: usize = 64 * 1024;
const MAX_MESSAGE_BYTES: usize = 1024 * 1024 * 1024;
/// Default time in-flight calls get to finish after a stop signal.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

/// The effective configuration of a server: the engine's, and the edge's.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Largest message, both directions.
    pub max_message_bytes: usize,
    /// Grace period for in-flight calls on shutdown.
    pub shutdown_grace: Duration,
    /// The API keys file; `None` with `no_auth`.
    pub keys_file: Option<PathBuf>,
    /// Auth is off.
    pub no_auth: bool,
    /// Where to serve /metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// TLS files: certificate, key, and the client CA for mTLS.
    pub tls: Option<TlsFiles>,
    /// Everything the engine is opened with (data directory, models,
    /// limits, Ask and index settings).
    pub engine: EngineConfig,
}

/// The PEM files of the server's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// CA that client certificates must chain to (mTLS), if required.
    pub client_ca: Option<PathBuf>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A model source string is malformed.
    #[error("--embed-model: {0}")]
    Model(#[from] quarry_models::ModelsError),
    /// A value is out of range.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting's flag name.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl ServeArgs {
    /// Merges flags, the file and defaults, and validates the result.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let (file, base) = match &self.config {
            Some(path) => (read_file(path)?, path.parent().map(Path::to_path_buf)),
            None => (ServeArgs::default(), None),
        };
        let listen = self
            .server
            .listen
            .or(file.server.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        // Paths in the file are relative to the file, not to the caller.
        let from_file = |p: PathBuf| match &base {
            Some(base) if p.is_relative() => base.join(p),
            _ => p,
        };
        let data_dir = match (self.server.data_dir, file.server.data_dir) {
            (Some(flag), _) => flag,
            (None, Some(path)) => from_file(path),
            (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
        };
        let max_message_bytes = in_range(
            "--max-message-bytes",
            self.server
                .max_message_bytes
                .or(file.server.max_message_bytes),
            DEFAULT_MAX_MESSAGE_BYTES,
            MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES,
        )?;
        let grace = self
            .server
            .shutdown_grace_secs
            .or(file.server.shutdown_grace_secs)
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS);
        if grace > 3600 {
            return Err(ConfigError::Invalid {
                setting: "--shutdown-grace-secs",
                reason: format!("is {grace}; the limit is 3600"),
            });
        }
        let model_cache = match (self.embed.model_cache, file.embed.model_cache) {
            (Some(flag), _) => ModelCache::from_env().with_root(flag),
            (None, Some(path)) => ModelCache::from_env().with_root(from_file(path)),
            (None, None) => ModelCache::from_env(),
        };
        let embed_model: ModelSource = self
            .embed
            .embed_model
            .or(file.embed.embed_model)
            .as_deref()
            .unwrap_or(quarry_models::DEFAULT_EMBED_MODEL)
            .parse()?;
        let workers = in_range(
            "--embed-workers",
            self.embed.embed_workers.or(file.embed.embed_workers),
            1,
            1..=64,
        )?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let embed_queue = QueueConfig {
            workers,
            threads_per_worker: in_range(
                "--embed-threads",
                self.embed.embed_threads.or(file.embed.embed_threads),
                (cores / workers).max(1),
                1..=256,
            )?,
            capacity: in_range(
                "--embed-queue-capacity",
                self.embed
                    .embed_queue_capacity
                    .or(file.embed.embed_queue_capacity),
                256,
                1..=100_000,
            )?,
            max_batch_tokens: in_range(
                "--embed-batch-tokens",
                self.embed
                    .embed_batch_tokens
                    .or(file.embed.embed_batch_tokens),
                2048,
                256..=1_000_000,
            )?,
        };
        let defaults = EmbedLimits::default();
        let embed_limits = EmbedLimits {
            max_texts: in_range(
                "--max-embed-texts",
                self.embed.max_embed_texts.or(file.embed.max_embed_texts),
                defaults.max_texts,
                1..=100_000,
            )?,
            max_text_bytes: in_range(
                "--max-embed-text-bytes",
                self.embed
                    .max_embed_text_bytes
                    .or(file.embed.max_embed_text_bytes),
                defaults.max_text_bytes,
                1..=16 * 1024 * 1024,
            )?,
        };
        let index = IndexConfig {
            checkpoint_interval: Duration::from_secs(in_range(
                "--index-checkpoint-secs",
                self.storage
                    .index_checkpoint_secs
                    .or(file.storage.index_checkpoint_secs),
                IndexConfig::default().checkpoint_interval.as_secs() as usize,
                1..=86_400,
            )? as u64),
            rebuild_share: in_range(
                "--hnsw-rebuild-percent",
                self.storage
                    .hnsw_rebuild_percent
                    .or(file.storage.hnsw_rebuild_percent),
                (IndexConfig::default().rebuild_share * 100.0).round() as usize,
                1..=90,
            )? as f64
                / 100.0,
        };
        let generate_model = match self
            .ask
            .generate_model
            .or(file.ask.generate_model)
            .as_deref()
            .unwrap_or(quarry_models::DEFAULT_GENERATE_MODEL)
        {
            "none" => None,
            source => Some(source.parse().map_err(|e| ConfigError::Invalid {
                setting: "--generate-model",
                reason: format!("{e}"),
            })?),
        };
        let generate_queue_capacity = in_range(
            "--generate-queue-capacity",
            self.ask
                .generate_queue_capacity
                .or(file.ask.generate_queue_capacity),
            16,
            1..=10_000,
        )?;
        let ask_defaults = AskConfig::default();
        let max_top_k = in_range(
            "--max-top-k",
            self.limits.max_top_k.or(file.limits.max_top_k),
            SearchLimits::default().max_top_k,
            1..=1000,
        )?;
        let max_question_bytes = in_range(
            "--max-question-bytes",
            self.limits
                .max_question_bytes
                .or(file.limits.max_question_bytes),
            ask_defaults.max_question_bytes,
            16..=1024 * 1024,
        )?;
        let document_defaults = DocumentLimits::default();
        let document_limits = DocumentLimits {
            max_documents: in_range(
                "--max-documents-per-request",
                self.limits
                    .max_documents_per_request
                    .or(file.limits.max_documents_per_request),
                document_defaults.max_documents,
                1..=100_000,
            )?,
            max_text_bytes: in_range(
                "--max-document-bytes",
                self.limits
                    .max_document_bytes
                    .or(file.limits.max_document_bytes),
                // A document must fit in a message.
                document_defaults.max_text_bytes.min(max_message_bytes),
                1024..=(64 * 1024 * 1024).min(max_message_bytes),
            )?,
            ..document_defaults
        };
        let search_limits = SearchLimits {
            max_top_k,
            max_query_bytes: max_question_bytes,
            depth: SearchLimits::default().depth.max(max_top_k),
            ..SearchLimits::default()
        };
        let min_similarity = self
            .ask
            .ask_min_similarity
            .or(file.ask.ask_min_similarity)
            .unwrap_or(ask_defaults.min_similarity);
        if !(0.0..=1.0).contains(&min_similarity) {
            return Err(ConfigError::Invalid {
                setting: "--ask-min-similarity",
                reason: format!("is {min_similarity}; allowed range is 0..=1"),
            });
        }
        let max_new_tokens = in_range(
            "--max-new-tokens",
            self.ask.max_new_tokens.or(file.ask.max_new_tokens),
            ask_defaults.max_new_tokens,
            1..=quarry_generate::sampling::MAX_NEW_TOKENS,
        )?;
        let unit = |setting: &'static str, value: Option<f32>, default: f32| {
            let v = value.unwrap_or(default);
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::Invalid {
                    setting,
                    reason: format!("is {v}; allowed range is 0..=1"),
                })
            }
        };
        let g = ask_defaults.grounding;
        let layout = match self
            .ask
            .ask_evidence_layout
            .clone()
            .or(file.ask.ask_evidence_layout.clone())
        {
            None => g.layout,
            Some(name) => EvidenceLayout::parse(&name).ok_or_else(|| ConfigError::Invalid {
                setting: "--ask-evidence-layout",
                reason: format!("is {name:?}; choose ranked or grouped"),
            })?,
        };
        let grounding = GroundingConfig {
            min_answer_score: unit(
                "--ask-min-answer-score",
                self.ask
                    .ask_min_answer_score
                    .or(file.ask.ask_min_answer_score),
                g.min_answer_score,
            )?,
            verify: quarry_engine::VerifyConfig {
                min_support: unit(
                    "--ask-min-support",
                    self.ask.ask_min_support.or(file.ask.ask_min_support),
                    g.verify.min_support,
                )?,
                ..g.verify
            },
            evidence_sentences: in_range(
                "--ask-evidence-sentences",
                self.ask
                    .ask_evidence_sentences
                    .or(file.ask.ask_evidence_sentences),
                g.evidence_sentences,
                1..=20,
            )?,
            layout,
            ..g
        };
        let ask = AskConfig {
            grounding,
            default_top_k: in_range(
                "--ask-top-k",
                self.ask.ask_top_k.or(file.ask.ask_top_k),
                ask_defaults.default_top_k,
                1..=ask_defaults.max_top_k,
            )?,
            min_similarity,
            max_new_tokens,
            max_question_bytes,
            max_top_k,
            redact_records: self.security.redact_records || file.security.redact_records,
            default_max_new_tokens: ask_defaults.default_max_new_tokens.min(max_new_tokens),
            ..ask_defaults
        };
        let no_auth = self.security.no_auth || file.security.no_auth;
        let keys_file = match (self.security.keys_file, file.security.keys_file) {
            (Some(flag), _) => Some(flag),
            (None, Some(path)) => Some(from_file(path)),
            (None, None) => None,
        };
        if keys_file.is_some() && no_auth {
            return Err(ConfigError::Invalid {
                setting: "--no-auth",
                reason: "is set together with --keys-file; choose one".into(),
            });
        }
        let tls = match (
            self.security
                .tls_cert
                .or(file.security.tls_cert.map(from_file)),
            self.security
                .tls_key
                .or(file.security.tls_key.map(from_file)),
            self.security
                .tls_client_ca
                .or(file.security.tls_client_ca.map(from_file)),
        ) {
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
        // The key itself never appears in an error message.
        let record_key = match (
            self.security
                .record_key_file
                .or(file.security.record_key_file.map(from_file)),
            std::env::var("QUARRY_RECORD_KEY").ok(),
        ) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some(quarry_store::RecordKey::from_hex(&text).map_err(|reason| {
                    ConfigError::Invalid {
                        setting: "--record-key-file",
                        reason,
                    }
                })?)
            }
            (None, Some(text)) if !text.is_empty() => {
                Some(quarry_store::RecordKey::from_hex(&text).map_err(|reason| {
                    ConfigError::Invalid {
                        setting: "QUARRY_RECORD_KEY",
                        reason,
                    }
                })?)
            }
            _ => None,
        };
        let min_free_disk_mb = in_range(
            "--min-free-disk-mb",
            self.storage
                .min_free_disk_mb
                .or(file.storage.min_free_disk_mb),
            (quarry_engine::DEFAULT_MIN_FREE_BYTES / (1024 * 1024)) as usize,
            0..=1024 * 1024,
        )?;
        Ok(ServeConfig {
            listen,
            max_message_bytes,
            shutdown_grace: Duration::from_secs(grace),
            keys_file,
            no_auth,
            metrics_listen: self.server.metrics_listen.or(file.server.metrics_listen),
            tls,
            engine: EngineConfig {
                data_dir,
                model_cache,
                embed_model,
                embed_queue,
                embed_limits,
                document_limits,
                search_limits,
                index,
                generate_model,
                generate_queue_capacity,
                ask,
                record_key,
                min_free_disk_bytes: min_free_disk_mb as u64 * 1024 * 1024,
            },
        })
    }
}

/// Checks the text of a config file against the real configuration:
/// unknown keys, wrong types and values out of range are errors. Paths in
/// it are taken as they are; nothing is opened.
pub fn check_file_text(text: &str) -> Result<(), ConfigError> {
    let dir = tempfile::tempdir().map_err(|source| ConfigError::Read {
        path: PathBuf::from("<temporary directory>"),
        source,
    })?;
    let path = dir.path().join("quarry.toml");
    std::fs::write(&path, text).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    ServeArgs {
        config: Some(path),
        ..Default::default()
    }
    .resolve()
    .map(|_| ())
}

/// The first set value, else the default, checked against its range.
fn in_range(
    setting: &'static str,
    value: Option<usize>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::Invalid {
            setting,
            reason: format!(
                "is {v}; allowed range is {}..={}",
                range.start(),
                range.end()
            ),
        })
    }
}

fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    // The sections are flattened into one table, which serde cannot check
    // for unknown keys; the flags are the list of known ones (a file
    // cannot name another file).
    let table: toml::Table = toml::from_str(&text).map_err(|e| parse(e.to_string()))?;
    let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    let known: Vec<&str> = command
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| *id != "config")
        .collect();
    if let Some(key) = table.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(parse(format!(
            "unknown setting {key:?}; the settings are {}",
            known.join(", ")
        )));
    }
    toml::from_str(&text).map_err(|e| parse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = ServeArgs::default().resolve().unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.engine.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!(
            c.engine.generate_model.map(|m| m.to_string()),
            Some(quarry_models::DEFAULT_GENERATE_MODEL.to_owned())
        );
        assert_eq!(c.engine.ask, AskConfig::default());
    }

    #[test]
    fn the_deploy_example_is_a_valid_config_with_the_defaults() {
        // Every key of the annotated example parses into the real struct
        // (unknown keys are refused) and says what the defaults are.
        let text = include_str!("../../deploy/quarry.toml");
        let file: ServeArgs = toml::from_str(text).unwrap();
        assert_eq!(file.ask.ask_top_k, Some(AskConfig::default().default_top_k));
        assert_eq!(
            file.ask.ask_min_similarity,
            Some(AskConfig::default().min_similarity)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarry.toml");
        std::fs::write(&path, text).unwrap();
        let c = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let defaults = ServeArgs::default().resolve().unwrap();
        assert_eq!(c.engine.ask, defaults.engine.ask);
        assert_eq!(
            c.engine.generate_queue_capacity,
            defaults.engine.generate_queue_capacity
        );
        assert_eq!(
            c.engine.generate_model.map(|m| m.to_string()),
            defaults.engine.generate_model.map(|m| m.to_string())
        );
    }

    #[test]
    fn grounding_settings_are_checked() {
        let c = ServeArgs {
            ask: AskArgs {
                ask_min_answer_score: Some(0.6),
                ask_evidence_layout: Some("ranked".into()),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.engine.ask.grounding.min_answer_score, 0.6);
        assert_eq!(c.engine.ask.grounding.layout, EvidenceLayout::Ranked);
        for (args, setting) in [
            (
                ServeArgs {
                    ask: AskArgs {
                        ask_min_support: Some(1.5),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "--ask-min-support",
            ),
            (
                ServeArgs {
                    ask: AskArgs {
                        ask_evidence_layout: Some("sideways".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "--ask-evidence-layout",
            ),
            (
                ServeArgs {
                    ask: AskArgs {
                        ask_evidence_sentences: Some(0),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "--ask-evidence-sentences",
            ),
        ] {
            let err = args.resolve().unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
    }

    #[test]
    fn generation_settings_are_checked() {
        let none = ServeArgs {
            ask: AskArgs {
                generate_model: Some("none".into()),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(none.engine.generate_model.is_none());
        for (args, setting) in [
            (
                ServeArgs {
                    ask: AskArgs {
                        ask_min_similarity: Some(1.5),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "--ask-min-similarity",
            ),
            (
                ServeArgs {
                    ask: AskArgs {
                        max_new_tokens: Some(0),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "--max-new-tokens",
            ),
            (
                ServeArgs {
                    ask: AskArgs {
                        generate_model: Some("ftp:x".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "--generate-model",
            ),
        ] {
            let err = args.resolve().unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
    }

    #[test]
    fn flags_override_the_file_and_file_paths_are_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("quarry.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:6000\"\ndata_dir = \"data\"\nmax_message_bytes = 1048576\n",
        )
        .unwrap();
        let from_file = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(from_file.listen.to_string(), "0.0.0.0:6000");
        assert_eq!(from_file.engine.data_dir, dir.path().join("data"));
        assert_eq!(from_file.max_message_bytes, 1 << 20);

        let overridden = ServeArgs {
            config: Some(file),
            server: ServerArgs {
                listen: Some("127.0.0.1:7000".parse().unwrap()),
                data_dir: Some("elsewhere".into()),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(overridden.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(overridden.engine.data_dir, PathBuf::from("elsewhere"));
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("quarry.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        // Neither a nested file nor a section's name is a key of the file.
        for text in [
            "config = \"other.toml\"\n",
            "[server]\nlisten = \"127.0.0.1:1\"\n",
        ] {
            std::fs::write(&file, text).unwrap();
            let err = ServeArgs {
                config: Some(file.clone()),
                ..Default::default()
            }
            .resolve()
            .unwrap_err();
            assert!(err.to_string().contains("unknown setting"), "{text}: {err}");
        }

        let err = ServeArgs {
            server: ServerArgs {
                max_message_bytes: Some(10),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().starts_with("--max-message-bytes"), "{err}");
    }
}
