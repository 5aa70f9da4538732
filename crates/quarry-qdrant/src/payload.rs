//! The payload layout of a chunk's metadata, chosen so that every Quarry
//! filter has an exact Qdrant equivalent:
//!
//! - Keys are hex-encoded under a type prefix, inside the `m` object:
//!   Qdrant reads keys as JSON paths (dots, brackets and quotes mean
//!   something there; Quarry's keys may hold any character but NUL).
//! - `m.s_<hex>`: a string, or a string list's elements (Qdrant matches an
//!   array when any element matches, as Quarry does for lists).
//! - `m.l_<hex>`: a string list's canonical form (its JSON text), for
//!   Quarry's whole-list equality, which Qdrant has no operator for.
//! - `m.i_<hex>`: an integer; `m.d_<hex>`: a double. Quarry compares ints
//!   and doubles as numbers, Qdrant's integer match does not see doubles:
//!   the filter asks both fields (see [`crate::filter`]).
//! - `m.b_<hex>`: a boolean.

use quarry_core::{MetaValue, Metadata};
use serde_json::{json, Map, Value};

/// The payload object holding the metadata.
pub const METADATA: &str = "m";

/// A metadata key's field for values of kind `kind` (`s`, `l`, `i`, `d`,
/// `b`), as a path from the payload's root.
pub fn field(kind: char, key: &str) -> String {
    format!("{METADATA}.{kind}_{}", crate::wire::hex(key.as_bytes()))
}

fn leaf(path: &str) -> &str {
    path.split_once('.').map_or(path, |(_, l)| l)
}

/// The metadata object of a chunk's payload.
pub fn metadata_payload(metadata: &Metadata) -> Value {
    let mut m = Map::new();
    for (key, value) in metadata {
        let mut put = |kind: char, v: Value| {
            m.insert(leaf(&field(kind, key)).to_owned(), v);
        };
        match value {
            MetaValue::String(s) => put('s', json!(s)),
            MetaValue::StringList(items) => {
                put('s', json!(items));
                put('l', json!(canonical_list(items)));
            }
            MetaValue::Int(i) => put('i', json!(i)),
            MetaValue::Double(d) => put('d', json!(d)),
            MetaValue::Bool(b) => put('b', json!(b)),
        }
    }
    Value::Object(m)
}

/// The canonical text of a string list (for whole-list equality).
pub fn canonical_list(items: &[String]) -> String {
    Value::from(items.to_vec()).to_string()
}
