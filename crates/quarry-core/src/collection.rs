//! Collections: their names, their settings with validated ranges, and the
//! summary (counts) that the API reports.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{InvalidArgument, Language, Quantization};

/// Longest allowed collection name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// A validated collection name: 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectionName(String);

impl CollectionName {
    /// Validates `name`; the error names the field `field` (the request field
    /// that carried it, e.g. `name` or `collection`).
    pub fn parse_field(name: &str, field: &str) -> Result<Self, InvalidArgument> {
        if name.is_empty() {
            return Err(InvalidArgument::new(field, "must not be empty"));
        }
        let len = name.chars().count();
        if len > MAX_NAME_LEN {
            return Err(InvalidArgument::new(
                field,
                format!("is {len} characters long; the limit is {MAX_NAME_LEN}"),
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(InvalidArgument::new(
                field,
                format!("contains {bad:?}; only A-Z, a-z, 0-9, '_' and '-' are allowed"),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Validates a name carried in a field called `name`.
    pub fn parse(name: &str) -> Result<Self, InvalidArgument> {
        Self::parse_field(name, "name")
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CollectionName {
    type Error = InvalidArgument;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CollectionName> for String {
    fn from(value: CollectionName) -> Self {
        value.0
    }
}

/// A setting's allowed range and default.
struct Range {
    field: &'static str,
    min: u32,
    max: u32,
    default: u32,
}

impl Range {
    fn check(&self, value: Option<u32>) -> Result<u32, InvalidArgument> {
        let v = value.unwrap_or(self.default);
        if v < self.min || v > self.max {
            return Err(InvalidArgument::new(
                self.field,
                format!("is {v}; allowed range is {}..={}", self.min, self.max),
            ));
        }
        Ok(v)
    }
}

const CHUNK_SIZE: Range = Range {
    field: "settings.chunk_size",
    min: 16,
    max: 2048,
    default: 256,
};
const CHUNK_OVERLAP: Range = Range {
    field: "settings.chunk_overlap",
    min: 0,
    max: 1023,
    default: 32,
};
const HNSW_M: Range = Range {
    field: "settings.hnsw_m",
    min: 4,
    max: 64,
    default: 16,
};
const HNSW_EF_CONSTRUCTION: Range = Range {
    field: "settings.hnsw_ef_construction",
    min: 16,
    max: 2000,
    default: 200,
};
const HNSW_EF_SEARCH: Range = Range {
    field: "settings.hnsw_ef_search",
    min: 8,
    max: 4096,
    default: 64,
};

/// The effective, validated settings of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSettings {
    /// Target chunk length in embedder tokens.
    pub chunk_size: u32,
    /// Tokens shared by consecutive chunks; less than half of `chunk_size`.
    pub chunk_overlap: u32,
    /// HNSW links per node.
    pub hnsw_m: u32,
    /// HNSW candidate list size while building; at least `hnsw_m`.
    pub hnsw_ef_construction: u32,
    /// HNSW candidate list size while searching.
    pub hnsw_ef_search: u32,
    /// The language its keyword index analyzes text in; fixed at creation.
    /// Collections made before languages existed read as English.
    #[serde(default)]
    pub language: Language,
    /// How the dense index holds the vectors; fixed at creation.
    /// Collections made before quantisation existed read as `none`.
    #[serde(default)]
    pub quantization: Quantization,
}

impl Default for CollectionSettings {
    fn default() -> Self {
        SettingsPatch::default()
            .resolve()
            .expect("defaults are within their ranges")
    }
}

/// Settings as a client sends them: every field optional, unset ones take
/// their defaults when resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    /// See [`CollectionSettings::chunk_size`].
    pub chunk_size: Option<u32>,
    /// See [`CollectionSettings::chunk_overlap`].
    pub chunk_overlap: Option<u32>,
    /// See [`CollectionSettings::hnsw_m`].
    pub hnsw_m: Option<u32>,
    /// See [`CollectionSettings::hnsw_ef_construction`].
    pub hnsw_ef_construction: Option<u32>,
    /// See [`CollectionSettings::hnsw_ef_search`].
    pub hnsw_ef_search: Option<u32>,
    /// See [`CollectionSettings::language`].
    pub language: Option<Language>,
    /// See [`CollectionSettings::quantization`].
    pub quantization: Option<Quantization>,
}

impl SettingsPatch {
    /// Fills defaults and checks every range and cross-field rule.
    pub fn resolve(self) -> Result<CollectionSettings, InvalidArgument> {
        let chunk_size = CHUNK_SIZE.check(self.chunk_size)?;
        let chunk_overlap = CHUNK_OVERLAP.check(self.chunk_overlap)?;
        if chunk_overlap * 2 >= chunk_size {
            return Err(InvalidArgument::new(
                CHUNK_OVERLAP.field,
                format!(
                    "is {chunk_overlap}; it must be less than half of settings.chunk_size ({chunk_size})"
                ),
            ));
        }
        let hnsw_m = HNSW_M.check(self.hnsw_m)?;
        let hnsw_ef_construction = HNSW_EF_CONSTRUCTION.check(self.hnsw_ef_construction)?;
        if hnsw_ef_construction < hnsw_m {
            return Err(InvalidArgument::new(
                HNSW_EF_CONSTRUCTION.field,
                format!(
                    "is {hnsw_ef_construction}; it must be at least settings.hnsw_m ({hnsw_m})"
                ),
            ));
        }
        let hnsw_ef_search = HNSW_EF_SEARCH.check(self.hnsw_ef_search)?;
        Ok(CollectionSettings {
            chunk_size,
            chunk_overlap,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef_search,
            language: self.language.unwrap_or_default(),
            quantization: self.quantization.unwrap_or_default(),
        })
    }
}

/// A collection as reported to clients: its settings and current counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// The collection's name.
    pub name: CollectionName,
    /// Its effective settings.
    pub settings: CollectionSettings,
    /// Creation time in ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Number of documents stored.
    pub document_count: u64,
    /// Number of chunks stored.
    pub chunk_count: u64,
    /// What the search indexes hold of it.
    pub indexed: IndexedCounts,
    /// How the backend spreads it over a cluster (`None` on a backend
    /// without shards or replicas: the embedded one).
    pub placement: Option<Placement>,
    /// Something the caller should know about the create call (a setting
    /// the backend ignores); empty otherwise.
    pub note: String,
}

/// How a clustered backend shards and replicates a collection. Unset
/// fields take the backend's defaults. The embedded backend has one data
/// directory and ignores them (with a note).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// Shards the collection is split into (1..=1024).
    pub shard_number: Option<u32>,
    /// Copies of each shard (1..=16).
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge a write before it succeeds
    /// (1..=replication_factor).
    pub write_consistency_factor: Option<u32>,
}

impl Placement {
    /// Whether any field is set.
    pub fn is_set(&self) -> bool {
        self.shard_number.is_some()
            || self.replication_factor.is_some()
            || self.write_consistency_factor.is_some()
    }

    /// Checks the ranges, naming the field and its limit.
    pub fn validate(&self) -> Result<(), crate::InvalidArgument> {
        let check = |name: &str, v: Option<u32>, max: u32| match v {
            Some(v) if v == 0 || v > max => Err(crate::InvalidArgument::new(
                format!("placement.{name}"),
                format!("must be 1..={max}, got {v}"),
            )),
            _ => Ok(()),
        };
        check("shard_number", self.shard_number, 1024)?;
        check("replication_factor", self.replication_factor, 16)?;
        let rf = self.replication_factor.unwrap_or(1);
        match self.write_consistency_factor {
            Some(w) if w == 0 || w > rf => Err(crate::InvalidArgument::new(
                "placement.write_consistency_factor",
                format!("must be 1..=replication_factor ({rf}), got {w}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Chunks each search index of a collection holds. Both equal the stored
/// chunk count whenever no write is in flight; a difference after a
/// restart means recovery went wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexedCounts {
    /// Live chunks in the vector (HNSW) index, deleted ones not counted.
    pub dense: u64,
    /// Chunks in the keyword (BM25) index's committed state.
    pub keyword: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_follow_the_rules() {
        for ok in ["a", "A-b_9", &"x".repeat(64)] {
            assert_eq!(CollectionName::parse(ok).unwrap().as_str(), ok);
        }
        let too_long = "x".repeat(65);
        for (bad, needle) in [
            ("", "must not be empty"),
            (too_long.as_str(), "the limit is 64"),
            ("a b", "' '"),
            ("é", "'é'"),
            ("a/b", "'/'"),
        ] {
            let err = CollectionName::parse(bad).unwrap_err();
            assert_eq!(err.field, "name");
            assert!(err.reason.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn default_settings_are_the_documented_ones() {
        let s = CollectionSettings::default();
        assert_eq!(
            (
                s.chunk_size,
                s.chunk_overlap,
                s.hnsw_m,
                s.hnsw_ef_construction,
                s.hnsw_ef_search
            ),
            (256, 32, 16, 200, 64)
        );
    }

    #[test]
    fn settings_errors_name_the_field_and_limit() {
        let cases = [
            (
                SettingsPatch {
                    chunk_size: Some(8),
                    ..Default::default()
                },
                "settings.chunk_size",
                "16..=2048",
            ),
            (
                SettingsPatch {
                    chunk_size: Some(100),
                    chunk_overlap: Some(50),
                    ..Default::default()
                },
                "settings.chunk_overlap",
                "half",
            ),
            (
                SettingsPatch {
                    hnsw_m: Some(65),
                    ..Default::default()
                },
                "settings.hnsw_m",
                "4..=64",
            ),
            (
                SettingsPatch {
                    hnsw_m: Some(32),
                    hnsw_ef_construction: Some(20),
                    ..Default::default()
                },
                "settings.hnsw_ef_construction",
                "at least",
            ),
            (
                SettingsPatch {
                    hnsw_ef_search: Some(0),
                    ..Default::default()
                },
                "settings.hnsw_ef_search",
                "8..=4096",
            ),
        ];
        for (patch, field, needle) in cases {
            let err = patch.resolve().unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.reason.contains(needle), "{err}");
        }
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_name_language(s in "\\PC{0,70}") {
            let valid = !s.is_empty()
                && s.chars().count() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(CollectionName::parse(&s).is_ok(), valid);
        }

        #[test]
        fn resolved_settings_keep_their_invariants(
            cs in proptest::option::of(0u32..3000),
            co in proptest::option::of(0u32..1500),
            m in proptest::option::of(0u32..100),
            efc in proptest::option::of(0u32..3000),
            efs in proptest::option::of(0u32..5000),
        ) {
            let patch = SettingsPatch { chunk_size: cs, chunk_overlap: co, hnsw_m: m, hnsw_ef_construction: efc, hnsw_ef_search: efs, language: None, quantization: None };
            if let Ok(s) = patch.resolve() {
                prop_assert!(s.chunk_overlap * 2 < s.chunk_size);
                prop_assert!((4..=64).contains(&s.hnsw_m));
                prop_assert!(s.hnsw_ef_construction >= s.hnsw_m);
                prop_assert!((8..=4096).contains(&s.hnsw_ef_search));
            }
        }
    }
}
