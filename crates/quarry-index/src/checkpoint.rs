//! The dense index on disk: the graph's arrays, each in its own file, and
//! a small manifest, replaced atomically.
//!
//! Each checkpoint is a new directory `ckpt-<seq>-<nanos>` holding
//! `vectors.f32`, `ids.u64`, `levels.u8`, `links0.u32`, `upper.u32`,
//! `extra.u32` (the graph's arrays as they are in memory, little-endian;
//! see [`crate::hnsw`]), for a quantised collection `codes.i8` (the int8
//! codes with their scales), and `meta.json`; every file and the directory are
//! fsynced, and only then does the `CURRENT` file (itself written to a
//! temporary name, fsynced and renamed) start naming it. A crash at any
//! point leaves `CURRENT` naming either the old checkpoint or the new one,
//! both complete. Older directories are removed afterwards.
//!
//! Loading reads each file once into its array (the vectors and codes are
//! memory-mapped instead), checking its length and CRC-32 against the
//! manifest as it goes, then checks every link
//! ([`Graph::from_parts`]): a restart is a sequential read, not a
//! re-insertion. Any mismatch is [`IndexError::Damaged`], which recovery
//! answers with a rebuild from the store; so is a checkpoint of an older
//! format (format 2 was hnsw_rs's dump).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use quarry_core::{CollectionSettings, Quantization};
use serde::{Deserialize, Serialize};

use crate::dense::DenseIndex;
use crate::distance::Metric;
use crate::hnsw::codes::Codes;
use crate::hnsw::{Graph, Rows, Shape};
use crate::IndexError;

#[cfg(target_endian = "big")]
compile_error!("checkpoints are the in-memory arrays, written little-endian");

const CURRENT: &str = "CURRENT";
const META: &str = "meta.json";
/// 3: Quarry's own graph arrays (2 was hnsw_rs's dump).
const FORMAT: u32 = 3;

/// What a checkpoint directory holds besides the arrays.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The op-log sequence number the checkpoint contains.
    seq: u64,
    /// Points in the graph, live and deleted.
    points: usize,
    /// Vector dimension (0 for an empty graph).
    dimension: usize,
    /// The graph's M and ef_construction.
    m: usize,
    ef_construction: usize,
    /// The entry point's slot.
    entry: u32,
    /// Points deleted since the graph was built.
    tombstones: Vec<u64>,
    /// Slots added since the graph's last repair.
    recent: Vec<u32>,
    /// Whether the graph keeps int8 codes (then the files end with
    /// [`CODES`]).
    #[serde(default)]
    quantization: Quantization,
    /// The array files, as written.
    files: Vec<FileCheck>,
}

/// A file's length and checksum, to refuse a damaged file.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileCheck {
    name: String,
    bytes: u64,
    crc32: u32,
}

/// The array files, in the manifest's order.
const FILES: [&str; 6] = [
    "vectors.f32",
    "ids.u64",
    "levels.u8",
    "links0.u32",
    "upper.u32",
    "extra.u32",
];
/// The seventh file of a quantised graph.
const CODES: &str = "codes.i8";

/// Writes `bytes` (in pieces) to `dir/name`, fsynced, and returns its
/// check.
fn write_file<P: AsRef<[u8]>>(
    dir: &Path,
    name: &str,
    pieces: impl Iterator<Item = P>,
) -> Result<FileCheck, IndexError> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(IndexError::io(&path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = crc32fast::Hasher::new();
    let mut bytes = 0u64;
    for piece in pieces {
        let piece = piece.as_ref();
        hasher.update(piece);
        bytes += piece.len() as u64;
        out.write_all(piece).map_err(IndexError::io(&path))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| IndexError::io(&path)(e.into_error()))?;
    file.sync_all().map_err(IndexError::io(&path))?;
    Ok(FileCheck {
        name: name.to_owned(),
        bytes,
        crc32: hasher.finalize(),
    })
}

/// Atomic words as bytes, a block at a time.
fn words(list: &[AtomicU32]) -> impl Iterator<Item = Vec<u8>> + '_ {
    list.chunks(1 << 16).map(|block| {
        let plain: Vec<u32> = block.iter().map(|w| w.load(Relaxed)).collect();
        bytemuck::cast_slice(&plain).to_vec()
    })
}

impl FileCheck {
    /// Opens this file of `dir`, refusing another name than `expect` or a
    /// length other than the manifest's (or not a whole number of `unit`s).
    fn open(&self, dir: &Path, expect: &str, unit: u64) -> Result<(File, PathBuf), IndexError> {
        if self.name != expect {
            return Err(IndexError::damaged(
                dir,
                format!(
                    "the manifest names {:?} where {expect:?} belongs",
                    self.name
                ),
            ));
        }
        let path = dir.join(&self.name);
        let opened = File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len())));
        let (f, len) = opened.map_err(|e| IndexError::damaged(&path, e.to_string()))?;
        if len != self.bytes || !len.is_multiple_of(unit) {
            return Err(IndexError::damaged(
                &path,
                format!("is {len} bytes; the manifest says {}", self.bytes),
            ));
        }
        Ok((f, path))
    }

    /// Refuses a checksum other than the manifest's.
    fn check_crc(&self, path: &Path, crc: u32) -> Result<(), IndexError> {
        if crc == self.crc32 {
            Ok(())
        } else {
            Err(IndexError::damaged(
                path,
                format!("CRC-32 {crc:08x}; the manifest says {:08x}", self.crc32),
            ))
        }
    }

    /// Checks this file of `dir` (name, length, checksum) by reading it
    /// through a small buffer, then maps it as rows of `dim` values.
    fn map_rows<T: bytemuck::Pod>(
        &self,
        dir: &Path,
        expect: &str,
        dim: usize,
    ) -> Result<Rows<T>, IndexError> {
        let (mut f, path) = self.open(dir, expect, std::mem::size_of::<T>() as u64)?;
        let damaged = |e: std::io::Error| IndexError::damaged(&path, e.to_string());
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 22];
        loop {
            let n = f.read(&mut buf).map_err(damaged)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        self.check_crc(&path, hasher.finalize())?;
        Rows::map(&path, dim).map_err(damaged)
    }

    /// Reads this file of `dir` whole into an array of `T`, refusing a
    /// length or checksum other than the manifest's.
    fn read<T: bytemuck::Pod>(&self, dir: &Path, expect: &str) -> Result<Vec<T>, IndexError> {
        let size = std::mem::size_of::<T>() as u64;
        let (mut f, path) = self.open(dir, expect, size)?;
        let mut out: Vec<T> = vec![T::zeroed(); (self.bytes / size) as usize];
        let mut hasher = crc32fast::Hasher::new();
        for block in bytemuck::cast_slice_mut::<T, u8>(&mut out).chunks_mut(1 << 22) {
            f.read_exact(block)
                .map_err(|e| IndexError::damaged(&path, e.to_string()))?;
            hasher.update(block);
        }
        self.check_crc(&path, hasher.finalize())?;
        Ok(out)
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

/// Saves `index` as the checkpoint of `dir` at `seq`, returning the
/// checkpoint's own directory.
pub fn save(index: &DenseIndex, dir: &Path, seq: u64) -> Result<PathBuf, IndexError> {
    fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = format!("ckpt-{seq:020}-{nanos}");
    let path = dir.join(&name);
    fs::create_dir(&path).map_err(IndexError::io(&path))?;

    let graph = index.graph();
    let parts = graph.parts();
    let extra: Vec<u32> = parts.extra.iter().flat_map(|&(a, b)| [a, b]).collect();
    let mut files = vec![
        write_file(
            &path,
            FILES[0],
            parts
                .vectors
                .iter()
                .flat_map(|piece| piece.chunks(1 << 20))
                .map(bytemuck::cast_slice),
        )?,
        write_file(
            &path,
            FILES[1],
            std::iter::once(bytemuck::cast_slice(parts.ids)),
        )?,
        write_file(&path, FILES[2], std::iter::once(parts.levels))?,
        write_file(&path, FILES[3], words(parts.links0))?,
        write_file(&path, FILES[4], words(parts.upper))?,
        write_file(
            &path,
            FILES[5],
            std::iter::once(bytemuck::cast_slice(&extra)),
        )?,
    ];
    if let Some(codes) = &parts.codes {
        files.push(write_file(
            &path,
            CODES,
            codes
                .iter()
                .flat_map(|piece| piece.chunks(1 << 22))
                .map(bytemuck::cast_slice::<i8, u8>),
        )?);
    }
    let shape = graph.shape();
    let manifest = Manifest {
        format: FORMAT,
        seq,
        points: graph.len(),
        dimension: shape.dim,
        m: shape.m,
        ef_construction: shape.ef_construction,
        entry: graph.entry().map_or(0, |(e, _)| e),
        tombstones: index.tombstones().collect(),
        recent: index.recent().to_vec(),
        quantization: if graph.is_quantized() {
            Quantization::Int8
        } else {
            Quantization::None
        },
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
    Ok(path)
}

/// Swaps `index`'s vectors (and codes) in memory for the same rows mapped
/// from `ckpt`, the checkpoint [`save`] just wrote of it, unchanged since:
/// after a build, the rows become file pages the kernel can drop and read
/// back, instead of anonymous memory (for a quantised graph, the floats
/// are then read only to rescore). Returns whether it swapped; rows of
/// another count are left alone.
pub fn map_saved(index: &mut DenseIndex, ckpt: &Path) -> Result<bool, IndexError> {
    let graph = index.graph_mut();
    let dim = graph.shape().dim;
    if graph.is_empty() {
        return Ok(false);
    }
    let path = ckpt.join(FILES[0]);
    let vectors = Rows::map(&path, dim).map_err(IndexError::io(&path))?;
    let codes = if graph.is_quantized() {
        let path = ckpt.join(CODES);
        Some(Rows::map(&path, Codes::width(dim)).map_err(IndexError::io(&path))?)
    } else {
        None
    };
    Ok(graph.adopt_rows(vectors, codes))
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
    let format = serde_json::from_slice::<serde_json::Value>(&raw)
        .map_err(|e| IndexError::damaged(&meta, e.to_string()))?
        .get("format")
        .and_then(serde_json::Value::as_u64);
    if format != Some(FORMAT as u64) {
        return Err(IndexError::damaged(
            &meta,
            format!(
                "format {} (this build reads {FORMAT})",
                format.map_or("unknown".into(), |f| f.to_string())
            ),
        ));
    }
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| IndexError::damaged(&meta, e.to_string()))?;
    if manifest.quantization != settings.quantization {
        // Fixed at creation: a mismatch is a checkpoint of something else.
        return Err(IndexError::damaged(
            &meta,
            format!(
                "holds {} vectors; the collection's are {}",
                manifest.quantization, settings.quantization
            ),
        ));
    }
    let quantized = manifest.quantization == Quantization::Int8;
    let expect = FILES.len() + usize::from(quantized);
    if manifest.files.len() != expect {
        return Err(IndexError::damaged(
            &meta,
            format!("lists {} files, not {expect}", manifest.files.len()),
        ));
    }
    let f = &manifest.files;
    let extra: Vec<u32> = f[5].read(&path, FILES[5])?;
    let extra: Vec<(u32, u32)> = extra.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let atomics = |w: Vec<u32>| -> Vec<AtomicU32> { w.into_iter().map(AtomicU32::new).collect() };
    let graph = Graph::from_parts(
        Metric::Dot,
        Shape {
            dim: manifest.dimension,
            m: manifest.m,
            ef_construction: manifest.ef_construction,
        },
        manifest.entry,
        f[0].map_rows(&path, FILES[0], manifest.dimension)?,
        f[1].read(&path, FILES[1])?,
        f[2].read(&path, FILES[2])?,
        atomics(f[3].read(&path, FILES[3])?),
        atomics(f[4].read(&path, FILES[4])?),
        &extra,
        if quantized {
            Some(f[6].map_rows(&path, CODES, Codes::width(manifest.dimension))?)
        } else {
            None
        },
    )
    .map_err(|why| IndexError::damaged(&path, why))?;
    if graph.len() != manifest.points {
        return Err(IndexError::damaged(
            &path,
            format!(
                "the graph holds {} points, the manifest says {}",
                graph.len(),
                manifest.points
            ),
        ));
    }
    let tombstones: HashSet<u64> = manifest.tombstones.iter().copied().collect();
    let index = DenseIndex::from_parts(graph, tombstones, manifest.recent, settings);
    Ok(Some((index, manifest.seq)))
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
        let graph = dir.path().join(&name).join("links0.u32");
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

    /// The manifest's lengths and checksums catch a truncated file and a
    /// flipped byte before any array is used.
    #[test]
    fn a_truncated_or_altered_data_file_is_damage_not_an_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = DenseIndex::new(CollectionSettings::default(), 80);
        idx.insert(vectors(80, 8, 2));
        save(&idx, dir.path(), 3).unwrap();
        let name = fs::read_to_string(dir.path().join(CURRENT)).unwrap();
        let data = dir.path().join(&name).join("vectors.f32");
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

    #[test]
    fn a_quantised_index_keeps_its_codes_and_serves_from_the_files_it_saved() {
        let dir = tempfile::tempdir().unwrap();
        let int8 = CollectionSettings {
            quantization: Quantization::Int8,
            ..CollectionSettings::default()
        };
        let items = vectors(400, 16, 9);
        let mut idx = DenseIndex::new(int8, 400);
        idx.insert(items.clone());
        idx.finish();
        let before: Vec<_> = items
            .iter()
            .step_by(40)
            .map(|(_, v)| idx.search(v, 5, None))
            .collect();
        let ckpt = save(&idx, dir.path(), 5).unwrap();
        assert!(ckpt.join(CODES).exists());
        // Served from the mapped files, the same answers.
        assert!(map_saved(&mut idx, &ckpt).unwrap());
        let after: Vec<_> = items
            .iter()
            .step_by(40)
            .map(|(_, v)| idx.search(v, 5, None))
            .collect();
        assert_eq!(before, after);
        idx.insert(
            vectors(10, 16, 77)
                .into_iter()
                .map(|(i, v)| (i + 1000, v))
                .collect(),
        );
        assert_eq!(idx.len(), 410);

        let (loaded, _) = load(dir.path(), int8).unwrap().unwrap();
        assert!(loaded.graph().is_quantized());
        let (id, v) = &items[123];
        assert_eq!(loaded.search(v, 1, None)[0].id, *id);
        // A checkpoint of another quantisation is not this collection's.
        let err = load(dir.path(), CollectionSettings::default()).err();
        assert!(
            matches!(&err, Some(IndexError::Damaged { reason, .. }) if reason.contains("int8")),
            "{err:?}"
        );
        // Damaged codes are caught by their checksum (nothing maps the
        // files while they are rewritten).
        drop((idx, loaded));
        let codes = ckpt.join(CODES);
        let mut bytes = fs::read(&codes).unwrap();
        bytes[100] ^= 1;
        fs::write(&codes, &bytes).unwrap();
        let err = load(dir.path(), int8).err();
        assert!(
            matches!(&err, Some(IndexError::Damaged { reason, .. }) if reason.contains("CRC-32")),
            "{err:?}"
        );
    }
}
