//! The server's configuration: command-line flags, each also an environment
//! variable `QUARRY_*`, over an optional TOML file, over defaults.
//!
//! Precedence is flag or environment variable, then the file, then the
//! default, so a deployment can ship a file and override one value with an
//! environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_engine::EngineConfig;

mod args;
mod ask;
mod embed;
mod limits;
mod security;
mod server;
mod storage;

use args::section;
pub use args::{AskArgs, EmbedArgs, LimitArgs, SecurityArgs, ServeArgs, ServerArgs, StorageArgs};
pub use server::{
    DEFAULT_DATA_DIR, DEFAULT_HTTP_LISTEN, DEFAULT_LISTEN, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_SHUTDOWN_GRACE_SECS,
};
pub use storage::Backend;

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
    /// Where to serve the HTTP API, if anywhere.
    pub http_listen: Option<SocketAddr>,
    /// TLS files: certificate, key, and the client CA for mTLS.
    pub tls: Option<TlsFiles>,
    /// Everything the engine is opened with (data directory, models,
    /// limits, Ask and index settings).
    pub engine: EngineConfig,
    /// Which storage backend holds the data.
    pub backend: Backend,
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
    /// Merges flags (and environment) over the file over defaults, once,
    /// then checks each section into the engine's and the edge's types.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let args = match &self.config {
            Some(path) => {
                let file = read_file(path)?;
                self.over(file)
            }
            None => self,
        };
        let server = args.server.resolve()?;
        let embed = args.embed.resolve()?;
        let storage = args.storage.resolve()?;
        let limits = args.limits.resolve(server.max_message_bytes)?;
        let security = args.security.resolve()?;
        let ask = args.ask.resolve(&limits, security.redact_records)?;
        Ok(ServeConfig {
            listen: server.listen,
            max_message_bytes: server.max_message_bytes,
            shutdown_grace: server.shutdown_grace,
            keys_file: security.keys_file,
            no_auth: security.no_auth,
            metrics_listen: server.metrics_listen,
            http_listen: server.http_listen,
            tls: security.tls,
            engine: EngineConfig {
                data_dir: server.data_dir,
                model_cache: embed.model_cache,
                embed_model: embed.model,
                embed_queue: embed.queue,
                embed_limits: embed.limits,
                document_limits: limits.documents,
                search_limits: limits.search,
                index: storage.index,
                generate_model: ask.generate_model,
                generate: ask.generate,
                ask: ask.config,
                record_key: security.record_key,
                min_free_disk_bytes: storage.min_free_disk_bytes,
                store_cache_bytes: storage.store_cache_bytes,
            },
            backend: storage.backend,
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
    let mut file: ServeArgs = toml::from_str(&text).map_err(|e| parse(e.to_string()))?;
    // Paths in the file are relative to the file, not to the caller.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rebase = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
    file.server.rebase(rebase);
    file.embed.rebase(rebase);
    file.security.rebase(rebase);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_engine::{AskConfig, EvidenceLayout};

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
        assert_eq!(c.engine.generate, defaults.engine.generate);
        assert_eq!(
            c.engine.generate_model.map(|m| m.to_string()),
            defaults.engine.generate_model.map(|m| m.to_string())
        );
    }

    #[test]
    fn the_qdrant_backend_needs_urls_and_hides_its_key() {
        let storage = |s: StorageArgs| {
            ServeArgs {
                storage: s,
                ..Default::default()
            }
            .resolve()
        };
        assert!(matches!(
            storage(StorageArgs::default()).unwrap().backend,
            Backend::Embedded
        ));
        let err = storage(StorageArgs {
            backend: Some("qdrant".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--qdrant-url"), "{err}");
        let err = storage(StorageArgs {
            qdrant_url: Some(vec!["http://q:6334".into()]),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("need --backend qdrant"), "{err}");
        let err = storage(StorageArgs {
            backend: Some("qdrant".into()),
            qdrant_url: Some(vec!["q:6334".into()]),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
        let err = storage(StorageArgs {
            backend: Some("qdrant".into()),
            qdrant_url: Some(vec!["http://q:6334".into()]),
            qdrant_timeout_secs: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--qdrant-timeout-secs"), "{err}");
        let c = storage(StorageArgs {
            backend: Some("qdrant".into()),
            qdrant_url: Some(vec!["http://a:6334".into(), " http://b:6334 ".into()]),
            qdrant_api_key: Some("s3cret-key".into()),
            qdrant_prefix: Some("prod".into()),
            ..Default::default()
        })
        .unwrap();
        let Backend::Qdrant(q) = &c.backend else {
            panic!("{:?}", c.backend)
        };
        assert_eq!(q.urls, ["http://a:6334", "http://b:6334"]);
        assert_eq!(q.prefix, "prod");
        assert_eq!(q.timeout, Duration::from_secs(10));
        assert!(
            !format!("{c:?}").contains("s3cret-key"),
            "the key is never printed"
        );
        // The file form: a list of URLs.
        let file: ServeArgs = toml::from_str(
            "backend = \"qdrant\"\nqdrant_url = [\"http://a:6334\", \"http://b:6334\"]\n",
        )
        .unwrap();
        assert_eq!(file.storage.qdrant_url.unwrap().len(), 2);
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
