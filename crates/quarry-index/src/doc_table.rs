//! The documents a collection's indexes know: for each, its metadata (what
//! filters test) and its chunk ids, under a small document number that
//! the metadata postings ([`crate::meta_index`]) hold instead of ids.
//!
//! Why this layout: a million documents as a `HashMap<String, {BTreeMap,
//! Vec}>` cost a B-tree node of about 600 bytes per document, its keys
//! copied in every node, and the ids copied again into the postings; most
//! of a restart at that size went to building it (and to the kernel
//! zeroing the pages it took). Here a document is its id (the map's key),
//! one exactly sized slice of (key, value) pairs whose keys are shared by
//! every document that has them, and one slice of chunk ids. The table is
//! saved beside the dense checkpoint ([`crate::doc_file`]), so a restart
//! reads it back instead of decoding every stored document.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt, HashSet};
use quarry_core::{Filter, MetaValue, Metadata};

/// A document's metadata, sorted by key.
pub(crate) type Fields = Box<[(Arc<str>, MetaValue)]>;

/// One document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Doc {
    fields: Fields,
    /// Its chunks' ids, in order.
    pub(crate) chunks: Box<[u64]>,
}

impl Doc {
    /// The value of one metadata key.
    pub(crate) fn get(&self, key: &str) -> Option<&MetaValue> {
        self.fields
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.fields[i].1)
    }

    /// Its metadata, sorted by key.
    pub(crate) fn fields(&self) -> &[(Arc<str>, MetaValue)] {
        &self.fields
    }

    /// Whether its metadata satisfies `filter` (the same semantics as
    /// [`Filter::matches`], which this calls).
    pub(crate) fn matches(&self, filter: &Filter) -> bool {
        filter.matches_with(&|key| self.get(key))
    }
}

/// Every document of one collection.
#[derive(Debug, Default)]
pub(crate) struct DocTable {
    numbers: HashMap<Box<str>, u32>,
    slots: Vec<Option<Doc>>,
    /// Numbers of removed documents, reused first.
    free: Vec<u32>,
    /// Metadata keys, shared by the documents that have them (a key no
    /// document uses any more stays: a few bytes per distinct key).
    keys: HashSet<Arc<str>>,
    chunk_count: usize,
}

impl DocTable {
    /// A table sized for `documents`.
    pub(crate) fn with_capacity(documents: usize) -> Self {
        Self {
            numbers: HashMap::with_capacity(documents),
            slots: Vec::with_capacity(documents),
            ..Self::default()
        }
    }

    /// Documents held.
    pub(crate) fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Chunks of all documents held.
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunk_count
    }

    fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(key) {
            return Arc::clone(k);
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(Arc::clone(&k));
        k
    }

    /// Adds a document the caller knows is not in the table (loading a
    /// saved table: one hash lookup per document instead of two).
    /// Returns `None`, and leaves the table as it was, if it was there.
    pub(crate) fn insert_new<'a>(
        &mut self,
        id: &str,
        fields: impl IntoIterator<Item = (&'a str, MetaValue)>,
        chunks: Box<[u64]>,
    ) -> Option<u32> {
        let (number, previous) = self.add_new(id, fields, chunks);
        let Some(previous) = previous else {
            return Some(number);
        };
        self.numbers.insert(Box::from(id), previous);
        if let Some(doc) = self.slots[number as usize].take() {
            self.chunk_count -= doc.chunks.len();
        }
        self.free.push(number);
        None
    }

    /// Files a document under a fresh number; returns it and the number
    /// the id had before (which the caller removed, or must restore).
    fn add_new<'a>(
        &mut self,
        id: &str,
        fields: impl IntoIterator<Item = (&'a str, MetaValue)>,
        chunks: Box<[u64]>,
    ) -> (u32, Option<u32>) {
        let fields: Fields = fields
            .into_iter()
            .map(|(k, v)| (self.intern(k), v))
            .collect();
        debug_assert!(fields.windows(2).all(|w| w[0].0 < w[1].0));
        self.chunk_count += chunks.len();
        let doc = Doc { fields, chunks };
        let number = match self.free.pop() {
            Some(n) => {
                self.slots[n as usize] = Some(doc);
                n
            }
            None => {
                let n = u32::try_from(self.slots.len())
                    .expect("fewer than 2^32 documents in a collection");
                self.slots.push(Some(doc));
                n
            }
        };
        (number, self.numbers.insert(Box::from(id), number))
    }

    /// Adds a document, replacing one with the same id; returns its number
    /// and the version it replaced.
    pub(crate) fn insert(
        &mut self,
        id: &str,
        metadata: &Metadata,
        chunks: Vec<u64>,
    ) -> (u32, Option<Doc>) {
        let replaced = self.remove(id).map(|(_, d)| d);
        let fields = metadata.iter().map(|(k, v)| (k.as_str(), v.clone()));
        (
            self.add_new(id, fields, chunks.into_boxed_slice()).0,
            replaced,
        )
    }

    /// Removes a document; returns its number and what it held.
    pub(crate) fn remove(&mut self, id: &str) -> Option<(u32, Doc)> {
        let number = self.numbers.remove(id)?;
        let doc = self.slots[number as usize]
            .take()
            .expect("a numbered document has a slot");
        self.chunk_count -= doc.chunks.len();
        self.free.push(number);
        Some((number, doc))
    }

    /// The document with this number.
    pub(crate) fn get(&self, number: u32) -> Option<&Doc> {
        self.slots.get(number as usize)?.as_ref()
    }

    /// Every document with its id and number, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, u32, &Doc)> + '_ {
        self.numbers.iter().map(|(id, &n)| {
            let doc = self.slots[n as usize]
                .as_ref()
                .expect("a numbered document has a slot");
            (&**id, n, doc)
        })
    }

    /// Every document, in no particular order.
    pub(crate) fn docs(&self) -> impl Iterator<Item = &Doc> + '_ {
        self.slots.iter().flatten()
    }

    /// Every document with its number, in number order (a pass over the
    /// slots in memory order, unlike [`DocTable::iter`]'s hash order).
    pub(crate) fn numbered(&self) -> impl Iterator<Item = (u32, &Doc)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(n, d)| Some((n as u32, d.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, i64)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), MetaValue::Int(*v)))
            .collect()
    }

    #[test]
    fn documents_are_found_replaced_and_their_numbers_reused() {
        let mut t = DocTable::default();
        let (a, none) = t.insert("a", &meta(&[("x", 1), ("y", 2)]), vec![1, 2]);
        assert!(none.is_none());
        let (b, _) = t.insert("b", &meta(&[("x", 3)]), vec![3]);
        assert_ne!(a, b);
        assert_eq!((t.len(), t.chunk_count()), (2, 3));
        assert_eq!(t.get(a).unwrap().get("y"), Some(&MetaValue::Int(2)));
        assert_eq!(t.get(a).unwrap().get("z"), None);

        // Both documents share one copy of the key "x".
        let x_a = &t.get(a).unwrap().fields()[0].0;
        let x_b = &t.get(b).unwrap().fields()[0].0;
        assert!(Arc::ptr_eq(x_a, x_b));

        let (a2, old) = t.insert("a", &meta(&[("x", 9)]), vec![4]);
        assert_eq!(&*old.unwrap().chunks, &[1, 2]);
        assert_eq!((t.len(), t.chunk_count()), (2, 2));
        assert_eq!(&*t.get(a2).unwrap().chunks, &[4]);

        let (gone, doc) = t.remove("b").unwrap();
        assert_eq!((gone, &*doc.chunks), (b, &[3][..]));
        assert!(t.get(b).is_none() && t.remove("b").is_none());
        let (c, _) = t.insert("c", &Metadata::new(), vec![]);
        assert_eq!(c, b, "a freed number is reused");
        let mut ids: Vec<&str> = t.iter().map(|(id, _, _)| id).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(t.docs().count(), 2);

        // insert_new refuses an id it holds and changes nothing.
        let before = (t.len(), t.chunk_count());
        assert!(t.insert_new("a", [], Box::new([7, 8])).is_none());
        assert_eq!((t.len(), t.chunk_count()), before);
        assert_eq!(&*t.get(a2).unwrap().chunks, &[4]);
        let d = t
            .insert_new("d", [("x", MetaValue::Int(1))], Box::new([9]))
            .unwrap();
        assert_eq!(t.get(d).unwrap().get("x"), Some(&MetaValue::Int(1)));
    }

    #[test]
    fn filters_mean_the_same_on_a_doc_as_on_its_metadata() {
        let m: Metadata = [
            ("lang".to_owned(), MetaValue::String("en".into())),
            ("n".to_owned(), MetaValue::Int(4)),
            (
                "tags".to_owned(),
                MetaValue::StringList(vec!["a".into(), "b".into()]),
            ),
        ]
        .into();
        let mut t = DocTable::default();
        let (n, _) = t.insert("d", &m, vec![1]);
        let doc = t.get(n).unwrap();
        let s = |v: &str| MetaValue::String(v.into());
        let eq = |key: &str, value| Filter::Equals {
            key: key.into(),
            value,
        };
        let range = |gte, gt| Filter::Range {
            key: "n".into(),
            gte,
            gt,
            lte: None,
            lt: None,
        };
        let filters = [
            eq("lang", s("en")),
            eq("lang", s("fr")),
            eq("missing", MetaValue::Int(1)),
            range(Some(4.0), None),
            range(None, Some(4.0)),
            Filter::In {
                key: "tags".into(),
                values: vec![s("b")],
            },
            Filter::And(vec![eq("lang", s("en")), range(Some(3.0), None)]),
        ];
        for filter in filters {
            assert_eq!(doc.matches(&filter), filter.matches(&m), "{filter:?}");
        }
    }
}
