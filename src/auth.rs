//! API keys and roles.
//!
//! A client sends `authorization: Bearer KEY`. Keys live in a TOML file as
//! SHA-256 digests (a key is 32 random bytes, so a fast digest is enough:
//! there is nothing to guess), each with a principal name, a role and an
//! optional collection allow-list; `quarry keys create` writes entries and
//! prints the key once. Keys are never stored or logged in clear.
//!
//! Authentication is an interceptor on every Quarry service (health and
//! reflection stay open for probes and discovery): no key or an unknown
//! key is UNAUTHENTICATED, and the caller's [`Principal`] goes into the
//! request's extensions. Authorization is the first line of each handler:
//! [`Principal::require`] for the method's role, [`Principal::may_use`]
//! for the collection, PERMISSION_DENIED otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Request, Status};

/// What a key may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, Embed, Ask, read collections and documents, its own history.
    Reader,
    /// And write documents (Upsert, BulkIngest, DeleteDocuments).
    Writer,
    /// And manage collections, and everyone's history.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reader" => Ok(Self::Reader),
            "writer" => Ok(Self::Writer),
            "admin" => Ok(Self::Admin),
            other => Err(format!("{other:?} is not a role (reader, writer, admin)")),
        }
    }
}

/// One key in the keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The principal's name, recorded with every Ask.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// Collections it may use; absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
}

/// The keys file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// The keys.
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

impl KeysFile {
    /// Reads a keys file; a missing file is an empty one when `missing_ok`.
    pub fn read(path: &Path, missing_ok: bool) -> Result<Self, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| AuthError::Parse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(AuthError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the file (owner-only permissions on Unix), replacing it
    /// atomically.
    pub fn write(&self, path: &Path) -> Result<(), AuthError> {
        let text = toml::to_string_pretty(self).map_err(AuthError::Serialize)?;
        let tmp: PathBuf = path.with_extension("tmp");
        let io = |source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, text).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }
}

/// A failure reading or writing keys.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The keys file could not be read or written.
    #[error("keys file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The keys file is not valid TOML of the expected shape.
    #[error("keys file {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: toml::de::Error,
    },
    /// The keys could not be written as TOML (a bug).
    #[error("cannot write the keys as TOML: {0}")]
    Serialize(#[source] toml::ser::Error),
    /// No random bytes for a new key.
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(#[source] std::io::Error),
}

/// The hex SHA-256 of a key.
pub fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new key: `qk_` and 64 hex digits from the operating system's random
/// source.
pub fn new_key() -> Result<String, AuthError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(AuthError::Random)?;
    Ok(format!(
        "qk_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name; empty when auth is off.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Collections it may use; `None`: all.
    pub collections: Option<Vec<String>>,
}

impl Principal {
    /// The caller when auth is off: may do everything, has no name.
    pub fn anonymous() -> Self {
        Self {
            name: String::new(),
            role: Role::Admin,
            collections: None,
        }
    }

    /// PERMISSION_DENIED unless the role reaches `role`.
    pub fn require(&self, role: Role, method: &str) -> Result<(), Status> {
        if self.role >= role {
            return Ok(());
        }
        Err(crate::grpc::status(
            tonic::Code::PermissionDenied,
            format!(
                "key {:?} has the {} role; {method} needs {}",
                self.name,
                self.role.as_str(),
                role.as_str()
            ),
        ))
    }

    /// PERMISSION_DENIED unless the key may use `collection`.
    pub fn may_use(&self, collection: &str) -> Result<(), Status> {
        match &self.collections {
            Some(allowed) if !allowed.iter().any(|c| c == collection) => Err(crate::grpc::status(
                tonic::Code::PermissionDenied,
                format!(
                    "key {:?} may not use collection {collection:?} (allowed: {})",
                    self.name,
                    allowed.join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the key sees every record, not only its own.
    pub fn sees_all_history(&self) -> bool {
        self.role == Role::Admin
    }

    /// The caller of a request (set by [`Authenticator`]).
    pub fn of<T>(request: &Request<T>) -> Result<Self, Status> {
        request
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| Status::internal("the request passed no authenticator"))
    }
}

/// The interceptor: authenticates every call of a Quarry service.
#[derive(Clone)]
pub struct Authenticator {
    /// `None`: auth is off.
    keys: Option<Arc<HashMap<String, Principal>>>,
}

impl Authenticator {
    /// Auth off: every caller is [`Principal::anonymous`].
    pub fn off() -> Self {
        Self { keys: None }
    }

    /// Auth by the keys of `file`.
    pub fn with_keys(file: &KeysFile) -> Self {
        let keys = file
            .keys
            .iter()
            .map(|k| {
                (
                    k.sha256.to_lowercase(),
                    Principal {
                        name: k.name.clone(),
                        role: k.role,
                        collections: k.collections.clone(),
                    },
                )
            })
            .collect();
        Self {
            keys: Some(Arc::new(keys)),
        }
    }

    /// Whether keys are required.
    pub fn is_on(&self) -> bool {
        self.keys.is_some()
    }
}

impl std::fmt::Debug for Authenticator {
    // Never the digests: how many keys, and whether auth is on.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.keys {
            None => f.write_str("Authenticator(off)"),
            Some(k) => write!(f, "Authenticator({} keys)", k.len()),
        }
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let principal = match &self.keys {
            None => Principal::anonymous(),
            Some(keys) => {
                let header = request
                    .metadata()
                    .get("authorization")
                    .ok_or_else(|| {
                        Status::unauthenticated(
                            "this server needs an API key: send the metadata authorization: Bearer KEY",
                        )
                    })?
                    .to_str()
                    .map_err(|_| Status::unauthenticated("the authorization metadata is not text"))?;
                let key = header
                    .strip_prefix("Bearer ")
                    .or_else(|| header.strip_prefix("bearer "))
                    .ok_or_else(|| {
                        Status::unauthenticated("the authorization metadata must be \"Bearer KEY\"")
                    })?
                    .trim();
                keys.get(&digest(key))
                    .cloned()
                    .ok_or_else(|| Status::unauthenticated("unknown API key"))?
            }
        };
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    fn file() -> (KeysFile, String, String) {
        let (r, a) = (new_key().unwrap(), new_key().unwrap());
        let file = KeysFile {
            keys: vec![
                KeyEntry {
                    name: "reader1".into(),
                    role: Role::Reader,
                    sha256: digest(&r),
                    collections: Some(vec!["docs".into()]),
                },
                KeyEntry {
                    name: "boss".into(),
                    role: Role::Admin,
                    sha256: digest(&a),
                    collections: None,
                },
            ],
        };
        (file, r, a)
    }

    fn call(auth: &mut Authenticator, header: Option<&str>) -> Result<Principal, Status> {
        let mut req = Request::new(());
        if let Some(h) = header {
            req.metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        let req = auth.call(req)?;
        Principal::of(&req)
    }

    #[test]
    fn keys_authenticate_and_roles_authorize() {
        let (file, reader, admin) = file();
        let mut auth = Authenticator::with_keys(&file);
        let p = call(&mut auth, Some(&format!("Bearer {reader}"))).unwrap();
        assert_eq!(p.name, "reader1");
        assert!(p.require(Role::Reader, "Retrieval.Search").is_ok());
        let denied = p.require(Role::Writer, "Documents.Upsert").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied.message().contains("Documents.Upsert") && denied.message().contains("writer")
        );
        assert!(p.may_use("docs").is_ok());
        assert_eq!(
            p.may_use("other").unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let boss = call(&mut auth, Some(&format!("Bearer {admin}"))).unwrap();
        assert!(boss.sees_all_history() && boss.may_use("any").is_ok());
        for bad in [None, Some("Bearer qk_nope"), Some("Basic abc")] {
            let e = call(&mut auth, bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad:?}");
            // The message never echoes what was sent.
            assert!(!e.message().contains("qk_nope"));
        }
        let p = call(&mut Authenticator::off(), None).unwrap();
        assert_eq!(p, Principal::anonymous());
    }

    #[test]
    fn keys_files_round_trip_without_the_keys() {
        let (file, reader, _) = file();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        file.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&reader));
        assert_eq!(KeysFile::read(&path, false).unwrap(), file);
        assert!(KeysFile::read(&dir.path().join("none.toml"), true)
            .unwrap()
            .keys
            .is_empty());
        assert!(KeysFile::read(&dir.path().join("none.toml"), false).is_err());
        assert!(new_key().unwrap().starts_with("qk_") && new_key().unwrap().len() == 67);
    }
}
