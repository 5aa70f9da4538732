//! The document table on disk: `documents.bin` in a collection's index
//! directory, saved with every dense checkpoint (and after an open that had
//! to read the documents from the store), so that a restart reads one file
//! instead of scanning and decoding every stored document.
//!
//! Layout, little-endian: the magic `QRYDOCS` and a version byte, the
//! op-log sequence number the table contains, the document count, then per
//! document its id, its chunk ids and its metadata (key, a type tag and the
//! value); a CRC-32 of everything before it ends the file. Strings are a
//! `u32` length and UTF-8 bytes. The file is replaced atomically; a file
//! that is short, fails its CRC or does not parse is [`IndexError::Damaged`]
//! and recovery reads the store instead: the table is derived, never the
//! truth.

use std::path::{Path, PathBuf};

use quarry_core::MetaValue;

use crate::checkpoint::write_atomic;
use crate::doc_table::DocTable;
use crate::IndexError;

const FILE: &str = "documents.bin";
const MAGIC: &[u8; 8] = b"QRYDOCS\x01";
/// Magic, sequence number, count.
const HEADER: usize = 8 + 8 + 8;

const STRING: u8 = 0;
const INT: u8 = 1;
const DOUBLE: u8 = 2;
const BOOL: u8 = 3;
const LIST: u8 = 4;

/// The table's file inside a collection's index directory.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("lengths in a document fit in 32 bits");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn encode(table: &DocTable, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 4 + table.len() * 48 + table.chunk_count() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(table.len() as u64).to_le_bytes());
    for (id, _, doc) in table.iter() {
        put_str(&mut out, id);
        put_u32(&mut out, doc.chunks.len());
        for c in doc.chunks.iter() {
            out.extend_from_slice(&c.to_le_bytes());
        }
        put_u32(&mut out, doc.fields().len());
        for (key, value) in doc.fields() {
            put_str(&mut out, key);
            match value {
                MetaValue::String(s) => {
                    out.push(STRING);
                    put_str(&mut out, s);
                }
                MetaValue::Int(i) => {
                    out.push(INT);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                MetaValue::Double(d) => {
                    out.push(DOUBLE);
                    out.extend_from_slice(&d.to_bits().to_le_bytes());
                }
                MetaValue::Bool(b) => {
                    out.push(BOOL);
                    out.push(u8::from(*b));
                }
                MetaValue::StringList(items) => {
                    out.push(LIST);
                    put_u32(&mut out, items.len());
                    for s in items {
                        put_str(&mut out, s);
                    }
                }
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Saves `table` as containing every op up to `seq`.
pub(crate) fn save(table: &DocTable, dir: &Path, seq: u64) -> Result<(), IndexError> {
    std::fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
    write_atomic(&path(dir), &encode(table, seq))
}

/// Reads the bytes of a file in order, refusing to run past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// A count of items at least `size` bytes each, checked against what
    /// is left so that a damaged count cannot ask for a huge allocation.
    fn count(&mut self, size: usize) -> Option<usize> {
        let n = self.u32()?;
        (n.checked_mul(size)? <= self.bytes.len() - self.at).then_some(n)
    }

    fn value(&mut self) -> Option<MetaValue> {
        Some(match self.u8()? {
            STRING => MetaValue::String(self.str()?.to_owned()),
            INT => MetaValue::Int(self.u64()? as i64),
            DOUBLE => MetaValue::Double(f64::from_bits(self.u64()?)),
            BOOL => match self.u8()? {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                _ => return None,
            },
            LIST => {
                let n = self.count(4)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.str()?.to_owned());
                }
                MetaValue::StringList(items)
            }
            _ => return None,
        })
    }
}

/// Parses the body (the CRC already checked); the error names the first
/// byte that does not fit the layout.
fn decode(body: &[u8]) -> Result<(DocTable, u64), String> {
    let mut r = Reader {
        bytes: body,
        at: HEADER,
    };
    let seq = u64::from_le_bytes(body[8..16].try_into().map_err(|_| "header")?);
    let count = u64::from_le_bytes(body[16..24].try_into().map_err(|_| "header")?);
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n <= body.len() / 12)
        .ok_or_else(|| format!("it claims {count} documents in {} bytes", body.len()))?;
    let mut table = DocTable::with_capacity(count);
    let malformed = |r: &Reader<'_>, n: usize| {
        format!(
            "document {} of {count} does not parse at byte {}",
            n + 1,
            r.at
        )
    };
    let mut fields: Vec<(&str, MetaValue)> = Vec::new();
    for n in 0..count {
        let id = r.str().ok_or_else(|| malformed(&r, n))?;
        let chunks = r.count(8).ok_or_else(|| malformed(&r, n))?;
        let raw = r.take(chunks * 8).ok_or_else(|| malformed(&r, n))?;
        let chunks: Box<[u64]> = raw
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        let nfields = r.count(6).ok_or_else(|| malformed(&r, n))?;
        fields.clear();
        for _ in 0..nfields {
            let key = r.str().ok_or_else(|| malformed(&r, n))?;
            let value = r.value().ok_or_else(|| malformed(&r, n))?;
            if fields.last().is_some_and(|(k, _)| *k >= key) {
                return Err(format!("document {id:?}: metadata keys out of order"));
            }
            fields.push((key, value));
        }
        if table.insert_new(id, fields.drain(..), chunks).is_none() {
            return Err(format!("document {id:?} appears twice"));
        }
    }
    if r.at != body.len() {
        return Err(format!(
            "{} bytes after the last document",
            body.len() - r.at
        ));
    }
    Ok((table, seq))
}

/// Loads the table saved in `dir` with its sequence number; `None` when
/// there is none.
pub(crate) fn load(dir: &Path) -> Result<Option<(DocTable, u64)>, IndexError> {
    let path = path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IndexError::io(&path)(e)),
    };
    let damaged = |reason: String| IndexError::damaged(&path, reason);
    if bytes.len() < HEADER + 4 || &bytes[..8] != MAGIC {
        return Err(damaged(format!(
            "not a document table ({} bytes, magic {:?})",
            bytes.len(),
            &bytes[..bytes.len().min(8)]
        )));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let crc = crc32fast::hash(body);
    if crc != want {
        return Err(damaged(format!(
            "CRC-32 {crc:08x}; the file says {want:08x}"
        )));
    }
    decode(body).map(Some).map_err(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use quarry_core::Metadata;

    fn value() -> impl Strategy<Value = MetaValue> {
        prop_oneof![
            ".{0,8}".prop_map(MetaValue::String),
            any::<i64>().prop_map(MetaValue::Int),
            any::<f64>()
                .prop_filter("finite", |d| d.is_finite())
                .prop_map(MetaValue::Double),
            any::<bool>().prop_map(MetaValue::Bool),
            prop::collection::vec(".{0,5}", 0..4).prop_map(MetaValue::StringList),
        ]
    }

    fn docs() -> impl Strategy<Value = Vec<(String, Metadata, Vec<u64>)>> {
        prop::collection::vec(
            (
                ".{0,12}",
                prop::collection::btree_map("[a-d]{1,3}", value(), 0..4),
                prop::collection::vec(any::<u64>(), 0..5),
            ),
            0..20,
        )
    }

    fn table(docs: &[(String, Metadata, Vec<u64>)]) -> DocTable {
        let mut t = DocTable::default();
        for (id, m, c) in docs {
            t.insert(id, m, c.clone());
        }
        t
    }

    /// A document as plain values: id, metadata pairs, chunk ids.
    type Plain = (String, Vec<(String, MetaValue)>, Vec<u64>);

    /// The table as plain values, to compare two tables.
    fn contents(t: &DocTable) -> Vec<Plain> {
        let mut all: Vec<_> = t
            .iter()
            .map(|(id, _, d)| {
                let fields = d
                    .fields()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                (id.to_owned(), fields, d.chunks.to_vec())
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    proptest! {
        #[test]
        fn a_saved_table_loads_back_equal(docs in docs(), seq in any::<u64>()) {
            let dir = tempfile::tempdir().unwrap();
            let t = table(&docs);
            save(&t, dir.path(), seq).unwrap();
            let (back, back_seq) = load(dir.path()).unwrap().unwrap();
            prop_assert_eq!(back_seq, seq);
            prop_assert_eq!(back.chunk_count(), t.chunk_count());
            prop_assert_eq!(contents(&back), contents(&t));
        }

        /// Any flipped byte or cut is reported as damage, never a panic or
        /// a wrong table.
        #[test]
        fn damage_is_reported(docs in docs(), at in any::<prop::sample::Index>(), cut in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            save(&table(&docs), dir.path(), 7).unwrap();
            let file = path(dir.path());
            let mut bytes = std::fs::read(&file).unwrap();
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] ^= 0x5a;
            }
            std::fs::write(&file, &bytes).unwrap();
            let damaged = matches!(load(dir.path()), Err(IndexError::Damaged { .. }));
            prop_assert!(damaged);
        }
    }

    #[test]
    fn no_file_is_none_and_bad_bodies_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());

        // A body whose CRC is right but whose count is impossible.
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&3u64.to_le_bytes());
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(path(dir.path()), &body).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("documents in"), "{err}");

        // The same document twice.
        let mut t = DocTable::default();
        t.insert("a", &Metadata::new(), vec![1]);
        let once = encode(&t, 1);
        let record = &once[HEADER..once.len() - 4];
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&2u64.to_le_bytes());
        body.extend_from_slice(record);
        body.extend_from_slice(record);
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(path(dir.path()), &body).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
    }
}
