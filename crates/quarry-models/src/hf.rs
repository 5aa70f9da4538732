//! `hf:` sources through hf-hub. Files already in the cache are used without
//! the network; otherwise the Hub (or `HF_ENDPOINT`) is probed with a short
//! timeout first, so an unreachable Hub is a clear error, not a hang.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use hf_hub::{Repo, RepoType};

use crate::FileSet;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn repo(name: &str, revision: Option<&str>) -> Repo {
    Repo::with_revision(
        name.to_owned(),
        RepoType::Model,
        revision.unwrap_or("main").to_owned(),
    )
}

/// The model's snapshot folder if every required file is cached.
pub(crate) fn cached(
    cache_dir: &Path,
    name: &str,
    revision: Option<&str>,
    files: &FileSet,
) -> Option<PathBuf> {
    let cache = hf_hub::Cache::new(cache_dir.to_path_buf()).repo(repo(name, revision));
    let mut dir = None;
    for file in files.required {
        let path = cache.get(file)?;
        dir.get_or_insert_with(|| snapshot_dir(&path, file));
    }
    dir
}

/// The snapshot folder that holds `file` (which may be nested, e.g.
/// `1_Pooling/config.json`).
fn snapshot_dir(path: &Path, file: &str) -> PathBuf {
    let depth = Path::new(file).components().count();
    let mut dir = path.to_path_buf();
    for _ in 0..depth {
        dir.pop();
    }
    dir
}

fn endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into())
}

/// Checks within a few seconds that the Hub's host accepts connections.
fn probe(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .map(|r| (r, 443))
        .or_else(|| endpoint.strip_prefix("http://").map(|r| (r, 80)));
    let Some((rest, default_port)) = rest else {
        return Err(format!("HF_ENDPOINT {endpoint:?} is not an http(s) URL"));
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let target = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    // Name resolution has no timeout of its own: run it on a thread.
    let (tx, rx) = mpsc::channel();
    let lookup = target.clone();
    std::thread::spawn(move || {
        let _ = tx.send(lookup.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    });
    let addrs = match rx.recv_timeout(PROBE_TIMEOUT) {
        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
        Ok(Ok(_)) => return Err(format!("{target} resolves to no address")),
        Ok(Err(e)) => return Err(format!("cannot resolve {target}: {e}")),
        Err(_) => return Err(format!("resolving {target} took over {PROBE_TIMEOUT:?}")),
    };
    let mut last = String::new();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("cannot connect to {target} ({addr}): {e}"),
        }
    }
    Err(last)
}

/// Downloads the files into the hf cache; returns the snapshot folder.
pub(crate) fn download(
    cache_dir: &Path,
    name: &str,
    revision: Option<&str>,
    files: &FileSet,
) -> Result<PathBuf, String> {
    let endpoint = endpoint();
    probe(&endpoint)?;
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(cache_dir.to_path_buf())
        .with_endpoint(endpoint)
        .with_progress(false)
        .build()
        .map_err(|e| format!("cannot set up the Hub client: {e}"))?;
    let repo = api.repo(repo(name, revision));
    let mut dir = None;
    for file in files.required {
        let path = repo
            .get(file)
            .map_err(|e| format!("downloading {file} from hf:{name} failed: {e}"))?;
        dir.get_or_insert_with(|| snapshot_dir(&path, file));
    }
    for file in files.optional {
        // Optional files (pooling config, ...) may not exist in every repo.
        if let Err(e) = repo.get(file) {
            tracing::debug!(file, error = %e, "optional model file not downloaded");
        }
    }
    dir.ok_or_else(|| "no files were requested".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_dir_strips_nested_file_names() {
        assert_eq!(
            snapshot_dir(
                Path::new("/c/snap/abc/1_Pooling/config.json"),
                "1_Pooling/config.json"
            ),
            PathBuf::from("/c/snap/abc")
        );
        assert_eq!(
            snapshot_dir(Path::new("/c/snap/abc/config.json"), "config.json"),
            PathBuf::from("/c/snap/abc")
        );
    }

    #[test]
    fn an_unreachable_endpoint_is_reported() {
        // Port 9 on loopback: nothing listens.
        let err = probe("http://127.0.0.1:9").unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
