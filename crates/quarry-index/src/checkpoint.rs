//! The dense index on disk: hnsw_rs's graph and data dumps plus a small
//! manifest, replaced atomically.
//!
//! Each checkpoint is a new directory `ckpt-<seq>-<nanos>` holding
//! `graph.hnsw.graph`, `graph.hnsw.data` and `meta.json`; every file and the
//! directory are fsynced, and only then does the `CURRENT` file (itself
//! written to a temporary name, fsynced and renamed) start naming it. A crash
//! at any point leaves `CURRENT` naming either the old checkpoint or the new
//! one, both complete. Older directories are removed afterwards.
//!
//! hnsw_rs's loader asserts on bad input, and on a truncated file it ends
//! the process (`std::process::exit`), instead of returning errors. So the
//! manifest records each dump file's length and CRC-32, checked before
//! hnsw_rs sees the files, and loading runs under `catch_unwind`; any
//! failure is reported as [`IndexError::Damaged`], which recovery answers
//! with a rebuild.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{AnnT, DistDot, Hnsw};
use quarry_core::CollectionSettings;
use serde::{Deserialize, Serialize};

use crate::dense::DenseIndex;
use crate::IndexError;

const CURRENT: &str = "CURRENT";
const META: &str = "meta.json";
const BASENAME: &str = "graph";
/// 2: the manifest lists the dump files' lengths and checksums.
const FORMAT: u32 = 2;

/// What a checkpoint directory holds besides the graph.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The op-log sequence number the checkpoint contains.
    seq: u64,
    /// hnsw_rs's basename of the dump (it may pick another than asked).
    basename: String,
    /// Points in the graph, live and deleted.
    points: usize,
    /// Vector dimension (0 for an empty graph).
    dimension: usize,
    /// Points deleted since the graph was built.
    tombstones: Vec<u64>,
    /// The dump files, as written.
    files: Vec<FileCheck>,
}

/// A file's length and checksum, to refuse a damaged file before hnsw_rs
/// reads it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileCheck {
    name: String,
    bytes: u64,
    crc32: u32,
}

impl FileCheck {
    fn of(path: &Path) -> Result<Self, IndexError> {
        let mut f = File::open(path).map_err(IndexError::io(path))?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(IndexError::io(path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            name,
            bytes,
            crc32: hasher.finalize(),
        })
    }

    /// Checks the file of this name in `dir` against the recorded one.
    fn verify(&self, dir: &Path) -> Result<(), IndexError> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(IndexError::damaged(
                dir,
                format!("the manifest names {:?}", self.name),
            ));
        }
        let path = dir.join(&self.name);
        let len = fs::metadata(&path)
            .map_err(|e| IndexError::damaged(&path, e.to_string()))?
            .len();
        if len != self.bytes {
            return Err(IndexError::damaged(
                &path,
                format!("is {len} bytes; the manifest says {}", self.bytes),
            ));
        }
        let found = Self::of(&path).map_err(|e| IndexError::damaged(&path, e.to_string()))?;
        if found.crc32 != self.crc32 {
            return Err(IndexError::damaged(
                &path,
                format!(
                    "CRC-32 {:08x}; the manifest says {:08x}",
                    found.crc32, self.crc32
                ),
            ));
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new
/// content: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(IndexError::io(&tmp))?;
    f.write_all(bytes).map_err(IndexError::io(&tmp))?;
    f.sync_all().map_err(IndexError::io(&tmp))?;
    fs::rename(&tmp, path).map_err(IndexError::io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory, so that names created in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(IndexError::io(dir))
}

fn sync_file(path: &Path) -> Result<(), IndexError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(IndexError::io(path))
}

/// Saves `index` as the checkpoint of `dir` at `seq`.
pub fn save(index: &DenseIndex, dir: &Path, seq: u64) -> Result<(), IndexError> {
    fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = format!("ckpt-{seq:020}-{nanos}");
    let path = dir.join(&name);
    fs::create_dir(&path).map_err(IndexError::io(&path))?;

    let graph = index.graph();
    let points = graph.get_nb_point();
    let mut files = Vec::new();
    let basename = if points == 0 {
        // hnsw_rs cannot dump a graph without an entry point.
        String::new()
    } else {
        let basename = graph
            .file_dump(&path, BASENAME)
            .map_err(|e| IndexError::damaged(&path, format!("hnsw_rs dump failed: {e}")))?;
        for ext in ["hnsw.graph", "hnsw.data"] {
            let file = path.join(format!("{basename}.{ext}"));
            sync_file(&file)?;
            files.push(FileCheck::of(&file)?);
        }
        basename
    };
    let manifest = Manifest {
        format: FORMAT,
        seq,
        basename,
        points,
        dimension: index.dimension(),
        tombstones: index.tombstones().collect(),
        files,
    };
    let json = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let meta = path.join(META);
    let mut f = File::create(&meta).map_err(IndexError::io(&meta))?;
    f.write_all(&json).map_err(IndexError::io(&meta))?;
    f.sync_all().map_err(IndexError::io(&meta))?;
    sync_dir(&path)?;
    write_atomic(&dir.join(CURRENT), name.as_bytes())?;
    remove_others(dir, &name);
    Ok(())
}

/// Removes checkpoint directories other than `keep`; failures only cost
/// disk space, so they are logged, not returned.
fn remove_others(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("ckpt-") && name != keep {
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove an old checkpoint");
            }
        }
    }
}

/// Loads the checkpoint of `dir`: `Ok(None)` when there is none,
/// [`IndexError::Damaged`] when it cannot be used.
pub fn load(
    dir: &Path,
    settings: CollectionSettings,
) -> Result<Option<(DenseIndex, u64)>, IndexError> {
    let current = dir.join(CURRENT);
    let name = match fs::read_to_string(&current) {
        Ok(name) => name,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IndexError::io(&current)(e)),
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(IndexError::damaged(dir, format!("CURRENT names {name:?}")));
    }
    let path = dir.join(name.trim());
    let meta = path.join(META);
    let raw = fs::read(&meta).map_err(|e| IndexError::damaged(&meta, e.to_string()))?;
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| IndexError::damaged(&meta, e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(IndexError::damaged(
            &meta,
            format!("format {} (this build reads {FORMAT})", manifest.format),
        ));
    }
    let tombstones: HashSet<u64> = manifest.tombstones.iter().copied().collect();
    if manifest.points == 0 {
        return Ok(Some((DenseIndex::new(settings, 0), manifest.seq)));
    }
    if manifest.files.len() != 2 {
        return Err(IndexError::damaged(
            &meta,
            format!(
                "lists {} files, not the graph and its data",
                manifest.files.len()
            ),
        ));
    }
    for file in &manifest.files {
        file.verify(&path)?;
    }
    let graph = load_graph(&path, &manifest.basename)?;
    if graph.get_nb_point() != manifest.points {
        return Err(IndexError::damaged(
            &path,
            format!(
                "the graph holds {} points, the manifest says {}",
                graph.get_nb_point(),
                manifest.points
            ),
        ));
    }
    let mut vectors =
        HashMap::with_capacity(manifest.points - tombstones.len().min(manifest.points));
    for point in graph.get_point_indexation() {
        let id = point.get_origin_id() as u64;
        let v = point.get_v();
        if v.len() != manifest.dimension {
            return Err(IndexError::damaged(
                &path,
                format!(
                    "point {id} has {} dimensions, not {}",
                    v.len(),
                    manifest.dimension
                ),
            ));
        }
        if !tombstones.contains(&id) {
            vectors.insert(id, v.to_vec());
        }
    }
    let index = DenseIndex::from_parts(graph, vectors, tombstones, settings);
    Ok(Some((index, manifest.seq)))
}

/// hnsw_rs's loaded graph borrows from its loader for as long as it lives;
/// an index lives until the process ends or the collection is dropped, so
/// the loader (a few hundred bytes: paths and options, the data is copied
/// into the graph) is leaked to give the graph a `'static` lifetime.
fn load_graph(path: &Path, basename: &str) -> Result<Hnsw<'static, f32, DistDot>, IndexError> {
    let path_buf: PathBuf = path.to_path_buf();
    let basename = basename.to_owned();
    let loaded = catch_unwind(AssertUnwindSafe(move || {
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&path_buf, &basename)));
        io.load_hnsw::<f32, DistDot>()
    }));
    match loaded {
        Ok(Ok(graph)) => Ok(graph),
        Ok(Err(e)) => Err(IndexError::damaged(
            path,
            format!("hnsw_rs load failed: {e}"),
        )),
        Err(_) => Err(IndexError::damaged(path, "hnsw_rs panicked while loading")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::tests::vectors;

    #[test]
    fn a_saved_index_loads_with_its_tombstones_and_takes_inserts() {
        let dir = tempfile::tempdir().unwrap();
        let items = vectors(300, 16, 3);
        let mut idx = DenseIndex::new(CollectionSettings::default(), 300);
        idx.insert(items[..250].to_vec());
        idx.remove(&[1, 2, 3]);
        save(&idx, dir.path(), 42).unwrap();
        // A second save replaces the first.
        save(&idx, dir.path(), 43).unwrap();
        let ckpts = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("ckpt-")
            })
            .count();
        assert_eq!(ckpts, 1);

        let (mut loaded, seq) = load(dir.path(), CollectionSettings::default())
            .unwrap()
            .unwrap();
        assert_eq!(seq, 43);
        assert_eq!(loaded.len(), 247);
        assert_eq!(loaded.tombstones().count(), 3);
        let (id, v) = &items[100];
        assert_eq!(loaded.search(v, 1, None)[0].id, *id);
        for h in loaded.search(&items[1].1, 10, None) {
            assert!(h.id > 3, "a tombstone came back");
        }
        loaded.insert(items[250..].to_vec());
        let (id, v) = &items[280];
        assert_eq!(loaded.search(v, 1, None)[0].id, *id);
    }

    #[test]
    fn an_empty_index_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        save(
            &DenseIndex::new(CollectionSettings::default(), 0),
            dir.path(),
            7,
        )
        .unwrap();
        let (idx, seq) = load(dir.path(), CollectionSettings::default())
            .unwrap()
            .unwrap();
        assert_eq!((idx.len(), seq), (0, 7));
    }

    #[test]
    fn no_checkpoint_is_none_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), CollectionSettings::default())
            .unwrap()
            .is_none());
        let mut idx = DenseIndex::new(CollectionSettings::default(), 50);
        idx.insert(vectors(50, 8, 1));
        save(&idx, dir.path(), 1).unwrap();
        let name = fs::read_to_string(dir.path().join(CURRENT)).unwrap();
        let graph = dir.path().join(&name).join("graph.hnsw.graph");
        let len = fs::metadata(&graph).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&graph).unwrap();
        f.set_len(len / 2).unwrap();
        match load(dir.path(), CollectionSettings::default()) {
            Err(IndexError::Damaged { .. }) => {}
            other => panic!(
                "expected Damaged, got {:?}",
                other.map(|o| o.map(|(_, s)| s))
            ),
        }
        fs::write(dir.path().join(CURRENT), "ckpt-missing").unwrap();
        assert!(matches!(
            load(dir.path(), CollectionSettings::default()),
            Err(IndexError::Damaged { .. })
        ));
    }

    /// hnsw_rs ends the process on a truncated data file; the manifest's
    /// lengths and checksums must catch that, and a flipped byte, first.
    #[test]
    fn a_truncated_or_altered_data_file_is_damage_not_an_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = DenseIndex::new(CollectionSettings::default(), 80);
        idx.insert(vectors(80, 8, 2));
        save(&idx, dir.path(), 3).unwrap();
        let name = fs::read_to_string(dir.path().join(CURRENT)).unwrap();
        let data = dir.path().join(&name).join("graph.hnsw.data");
        let original = fs::read(&data).unwrap();

        fs::write(&data, &original[..original.len() / 2]).unwrap();
        let err = load(dir.path(), CollectionSettings::default()).err();
        assert!(
            matches!(&err, Some(IndexError::Damaged { reason, .. }) if reason.contains("bytes; the manifest says")),
            "{err:?}"
        );

        let mut altered = original.clone();
        let middle = altered.len() / 2;
        altered[middle] ^= 0x40;
        fs::write(&data, &altered).unwrap();
        let err = load(dir.path(), CollectionSettings::default()).err();
        assert!(
            matches!(&err, Some(IndexError::Damaged { reason, .. }) if reason.contains("CRC-32")),
            "{err:?}"
        );

        fs::write(&data, &original).unwrap();
        let (loaded, seq) = load(dir.path(), CollectionSettings::default())
            .unwrap()
            .unwrap();
        assert_eq!((loaded.len(), seq), (80, 3));
    }
}
