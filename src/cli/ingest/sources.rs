//! Reading a corpus from disk: JSON-lines files (field names
//! configurable; BEIR's `_id` is recognised), and folders walked
//! recursively for .txt, .md and .html files; `.gz` files are read
//! through gzip. Each record becomes a document with the place it came
//! from (`file:line`, or the file), or a bad record with that place and
//! why.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use quarry::proto::{self, metadata_value::Kind};

/// Field names of JSON-lines records.
#[derive(Debug, Clone)]
pub struct Fields {
    /// The id field ("_id" is tried when it is missing, as in BEIR).
    pub id: String,
    /// The title field (optional in records).
    pub title: String,
    /// The text field.
    pub text: String,
    /// The metadata field (an object; optional in records).
    pub metadata: String,
}

/// What reading produced.
pub enum Record {
    /// A document, and where it came from.
    Doc {
        doc: proto::Document,
        at: String,
        /// Input bytes it stands for (for progress).
        bytes: u64,
    },
    /// A record that cannot be loaded.
    Bad { at: String, reason: String },
}

/// File kinds the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Jsonl,
    Text,
    Markdown,
    Html,
}

/// The kind of a file by its name (after a `.gz`), if it is one to load.
fn kind_of(path: &Path) -> Option<(FileKind, bool)> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    let (name, gz) = match name.strip_suffix(".gz") {
        Some(inner) => (inner.to_owned(), true),
        None => (name, false),
    };
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    let kind = match ext {
        "jsonl" | "ndjson" => FileKind::Jsonl,
        "txt" | "text" => FileKind::Text,
        "md" | "markdown" => FileKind::Markdown,
        "html" | "htm" => FileKind::Html,
        _ => return None,
    };
    Some((kind, gz))
}

/// One file to read, and the id prefix of its documents.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    /// The document id of a whole-file document: its path relative to the
    /// folder that was named (or the path as given).
    pub id: String,
    pub size: u64,
}

/// The files under `paths`, sorted within each folder. A named file is
/// read whatever its extension says about it only if it is a known kind.
pub fn inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut out = Vec::new();
    for root in paths {
        let meta =
            std::fs::metadata(root).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
        if meta.is_file() {
            anyhow::ensure!(
                kind_of(root).is_some(),
                "{}: not a file the loader reads (.jsonl, .ndjson, .txt, .md, .html, optionally .gz)",
                root.display()
            );
            out.push(Input {
                path: root.clone(),
                id: root.to_string_lossy().into_owned(),
                size: meta.len(),
            });
            continue;
        }
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = entry.map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
            if !entry.file_type().is_file() || kind_of(entry.path()).is_none() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .into_owned();
            out.push(Input {
                path: entry.path().to_path_buf(),
                id: rel,
                size: entry.metadata().map_or(0, |m| m.len()),
            });
        }
    }
    Ok(out)
}

fn open(path: &Path, gz: bool) -> std::io::Result<Box<dyn Read + Send>> {
    let file = std::fs::File::open(path)?;
    Ok(if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

fn meta_value(v: &serde_json::Value) -> proto::MetadataValue {
    use serde_json::Value;
    let kind = match v {
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Kind::StringList(proto::StringList {
                values: items
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            })
        }
        // Nested values are kept as their JSON text.
        other => Kind::StringValue(other.to_string()),
    };
    proto::MetadataValue { kind: Some(kind) }
}

/// The text of a JSON field that must be a string (numbers are accepted
/// as ids).
fn text_field(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON line as a document.
pub fn json_record(line: &str, fields: &Fields) -> Result<proto::Document, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_owned())?;
    let id = obj
        .get(&fields.id)
        .or_else(|| (fields.id == "id").then(|| obj.get("_id")).flatten())
        .ok_or_else(|| format!("no {:?} field", fields.id))?;
    let id = text_field(id).ok_or_else(|| format!("field {:?} is not a string", fields.id))?;
    let text = obj
        .get(&fields.text)
        .ok_or_else(|| format!("no {:?} field", fields.text))?
        .as_str()
        .ok_or_else(|| format!("field {:?} is not a string", fields.text))?
        .to_owned();
    let title = match obj.get(&fields.title) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(v) => v
            .as_str()
            .ok_or_else(|| format!("field {:?} is not a string", fields.title))?
            .to_owned(),
    };
    let metadata = match obj.get(&fields.metadata) {
        None | Some(serde_json::Value::Null) => Default::default(),
        Some(serde_json::Value::Object(m)) => {
            m.iter().map(|(k, v)| (k.clone(), meta_value(v))).collect()
        }
        Some(_) => return Err(format!("field {:?} is not an object", fields.metadata)),
    };
    Ok(proto::Document {
        id,
        title,
        text,
        metadata,
        ..Default::default()
    })
}

/// A whole file as a document: its text (HTML converted to text), the
/// first Markdown heading or HTML title as the title, else the file name.
pub fn file_document(
    input: &Input,
    kind: FileKind,
    bytes: &[u8],
) -> Result<proto::Document, String> {
    let stem = input
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (title, text) = match kind {
        FileKind::Html => {
            let title = html_title(bytes);
            let text = html2text::from_read(bytes, 100_000)
                .map_err(|e| format!("cannot convert the HTML: {e}"))?;
            (title, text)
        }
        _ => {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?
                .to_owned();
            let title = if kind == FileKind::Markdown {
                text.lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .map(|t| t.trim().to_owned())
            } else {
                None
            };
            (title, text)
        }
    };
    let metadata = BTreeMap::from([(
        "path".to_owned(),
        proto::MetadataValue {
            kind: Some(Kind::StringValue(input.id.clone())),
        },
    )]);
    Ok(proto::Document {
        id: input.id.clone(),
        title: title.filter(|t| !t.is_empty()).unwrap_or(stem),
        text,
        metadata: metadata.into_iter().collect(),
        ..Default::default()
    })
}

/// The text of the first `<title>` element.
fn html_title(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let lower = text.to_lowercase();
    let start = lower.find("<title")?;
    let open_end = lower[start..].find('>')? + start + 1;
    let end = lower[open_end..].find("</title>")? + open_end;
    let title = text[open_end..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then_some(title)
}

/// Reads every input in order, calling `emit` for each record; stops
/// early when `emit` returns false.
pub fn read_all(inputs: &[Input], fields: &Fields, emit: &mut dyn FnMut(Record) -> bool) {
    for input in inputs {
        let Some((kind, gz)) = kind_of(&input.path) else {
            continue;
        };
        let shown = input.path.display().to_string();
        let reader = match open(&input.path, gz) {
            Ok(r) => r,
            Err(e) => {
                if !emit(Record::Bad {
                    at: shown,
                    reason: format!("cannot open: {e}"),
                }) {
                    return;
                }
                continue;
            }
        };
        if kind == FileKind::Jsonl {
            let mut reader = BufReader::new(reader);
            let mut raw = Vec::new();
            let mut line_no = 0u64;
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        emit(Record::Bad {
                            at: format!("{shown}:{}", line_no + 1),
                            reason: format!("read error: {e}"),
                        });
                        break;
                    }
                }
                line_no += 1;
                let at = format!("{shown}:{line_no}");
                let bytes = raw.len() as u64;
                let record = match std::str::from_utf8(&raw) {
                    Err(e) => Record::Bad {
                        at,
                        reason: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                    },
                    Ok(line) if line.trim().is_empty() => continue,
                    Ok(line) => match json_record(line, fields) {
                        Ok(doc) => Record::Doc { doc, at, bytes },
                        Err(reason) => Record::Bad { at, reason },
                    },
                };
                if !emit(record) {
                    return;
                }
            }
        } else {
            let mut bytes = Vec::new();
            let mut reader = reader;
            let record = match reader.read_to_end(&mut bytes) {
                Err(e) => Record::Bad {
                    at: shown,
                    reason: format!("read error: {e}"),
                },
                Ok(_) => match file_document(input, kind, &bytes) {
                    Ok(doc) => Record::Doc {
                        doc,
                        at: shown,
                        bytes: input.size,
                    },
                    Err(reason) => Record::Bad { at: shown, reason },
                },
            };
            if !emit(record) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            id: "id".into(),
            title: "title".into(),
            text: "text".into(),
            metadata: "metadata".into(),
        }
    }

    #[test]
    fn json_records_and_their_errors() {
        let d = json_record(r#"{"_id": 7, "title": "T", "text": "body", "metadata": {"n": 2, "tags": ["a"], "deep": {"x": 1}}}"#, &fields()).unwrap();
        assert_eq!(
            (d.id.as_str(), d.title.as_str(), d.text.as_str()),
            ("7", "T", "body")
        );
        assert_eq!(d.metadata["n"].kind, Some(Kind::IntValue(2)));
        assert_eq!(
            d.metadata["deep"].kind,
            Some(Kind::StringValue(r#"{"x":1}"#.into()))
        );
        for (line, want) in [
            ("{", "invalid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"text": "x"}"#, "no \"id\" field"),
            (r#"{"id": "a"}"#, "no \"text\" field"),
            (r#"{"id": "a", "text": 3}"#, "\"text\" is not a string"),
            (
                r#"{"id": "a", "text": "x", "metadata": []}"#,
                "not an object",
            ),
        ] {
            let err = json_record(line, &fields()).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn kinds_and_titles() {
        assert_eq!(
            kind_of(Path::new("a/b.JSONL.gz")),
            Some((FileKind::Jsonl, true))
        );
        assert_eq!(
            kind_of(Path::new("x.md")),
            Some((FileKind::Markdown, false))
        );
        assert_eq!(kind_of(Path::new("x.pdf")), None);
        assert_eq!(kind_of(Path::new("README")), None);
        assert_eq!(
            html_title(b"<html><head><TITLE> Hello\n world </title></head></html>"),
            Some("Hello world".into())
        );
        assert_eq!(html_title(b"<p>no title</p>"), None);
    }
}
