//! An inverted index over document metadata, to narrow a filter's
//! candidates before [`Filter::matches`] checks them.
//!
//! Without it a filtered search matched the filter against every document
//! (most of a filtered search's time at 100,000 chunks). The postings map
//! each key to the documents that have it, and each key and value to the
//! documents whose value could equal it (numbers by their f64 value, a
//! string list under each element and as a whole). The candidates are a
//! superset of the matches, and every candidate is still checked with
//! `Filter::matches`, so the filter's semantics live in one place.
//! Documents are filed by their number in the [`crate::doc_table`], and
//! keys are the table's shared copies.

use std::sync::Arc;

use foldhash::{HashMap, HashSet, HashSetExt};
use quarry_core::{Filter, MetaValue};

use crate::doc_table::DocTable;

/// A value as the postings key it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ValueKey {
    Str(String),
    /// An f64's bits, -0 folded into 0.
    Num(u64),
    Bool(bool),
    List(Vec<String>),
}

fn num(x: f64) -> Option<ValueKey> {
    if x.is_nan() {
        return None;
    }
    Some(ValueKey::Num(if x == 0.0 { 0 } else { x.to_bits() }))
}

/// Every key a stored value is filed under.
fn stored_keys(v: &MetaValue) -> Vec<ValueKey> {
    match v {
        MetaValue::String(s) => vec![ValueKey::Str(s.clone())],
        MetaValue::Int(i) => num(*i as f64).into_iter().collect(),
        MetaValue::Double(d) => num(*d).into_iter().collect(),
        MetaValue::Bool(b) => vec![ValueKey::Bool(*b)],
        MetaValue::StringList(items) => items
            .iter()
            .map(|s| ValueKey::Str(s.clone()))
            .chain([ValueKey::List(items.clone())])
            .collect(),
    }
}

/// The key a wanted value is looked up under (`None`: nothing equals it).
fn wanted_key(v: &MetaValue) -> Option<ValueKey> {
    match v {
        MetaValue::String(s) => Some(ValueKey::Str(s.clone())),
        MetaValue::Int(i) => num(*i as f64),
        MetaValue::Double(d) => num(*d),
        MetaValue::Bool(b) => Some(ValueKey::Bool(*b)),
        MetaValue::StringList(items) => Some(ValueKey::List(items.clone())),
    }
}

/// The postings of one collection.
#[derive(Debug, Default)]
pub(crate) struct MetaIndex {
    with_key: HashMap<Arc<str>, HashSet<u32>>,
    by_value: HashMap<Arc<str>, HashMap<ValueKey, HashSet<u32>>>,
}

impl MetaIndex {
    /// The postings of every document of `docs`.
    pub(crate) fn build(docs: &DocTable) -> Self {
        let mut meta = Self::default();
        for (number, doc) in docs.numbered() {
            meta.insert(number, doc.fields());
        }
        meta
    }

    /// Files a document's metadata (sorted by key, as the table holds it).
    pub(crate) fn insert(&mut self, doc: u32, fields: &[(Arc<str>, MetaValue)]) {
        for (key, value) in fields {
            self.with_key
                .entry(Arc::clone(key))
                .or_default()
                .insert(doc);
            let values = self.by_value.entry(Arc::clone(key)).or_default();
            for vk in stored_keys(value) {
                values.entry(vk).or_default().insert(doc);
            }
        }
    }

    /// Unfiles a document's metadata (as it was inserted).
    pub(crate) fn remove(&mut self, doc: u32, fields: &[(Arc<str>, MetaValue)]) {
        for (key, value) in fields {
            if let Some(docs) = self.with_key.get_mut(key) {
                docs.remove(&doc);
                if docs.is_empty() {
                    self.with_key.remove(key);
                }
            }
            if let Some(values) = self.by_value.get_mut(key) {
                for vk in stored_keys(value) {
                    if let Some(docs) = values.get_mut(&vk) {
                        docs.remove(&doc);
                        if docs.is_empty() {
                            values.remove(&vk);
                        }
                    }
                }
                if values.is_empty() {
                    self.by_value.remove(key);
                }
            }
        }
    }

    /// Documents that may match `filter` (a superset of the matches), or
    /// `None` when the postings cannot narrow it.
    pub(crate) fn candidates(&self, filter: &Filter) -> Option<HashSet<u32>> {
        let posting = |key: &str, wanted: &MetaValue| -> HashSet<u32> {
            wanted_key(wanted)
                .and_then(|vk| self.by_value.get(key)?.get(&vk))
                .cloned()
                .unwrap_or_default()
        };
        match filter {
            Filter::Equals { key, value } => Some(posting(key, value)),
            Filter::In { key, values } => {
                Some(values.iter().flat_map(|v| posting(key, v)).collect())
            }
            Filter::Range { key, .. } => {
                Some(self.with_key.get(key.as_str()).cloned().unwrap_or_default())
            }
            Filter::And(parts) => {
                let mut sets: Vec<HashSet<u32>> =
                    parts.iter().filter_map(|p| self.candidates(p)).collect();
                sets.sort_by_key(HashSet::len);
                let mut sets = sets.into_iter();
                let first = sets.next()?;
                Some(sets.fold(first, |acc, s| acc.intersection(&s).copied().collect()))
            }
            Filter::Or(parts) => {
                let mut all = HashSet::new();
                for p in parts {
                    all.extend(self.candidates(p)?);
                }
                Some(all)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foldhash::HashMapExt;
    use proptest::prelude::*;
    use quarry_core::Metadata;

    fn fields(m: &Metadata) -> Vec<(Arc<str>, MetaValue)> {
        m.iter()
            .map(|(k, v)| (Arc::from(k.as_str()), v.clone()))
            .collect()
    }

    fn value() -> impl Strategy<Value = MetaValue> {
        prop_oneof![
            prop::sample::select(vec!["a", "b", "c"]).prop_map(|s| MetaValue::String(s.into())),
            (-3i64..4).prop_map(MetaValue::Int),
            prop::sample::select(vec![-0.0, 0.0, 1.0, 1.5, 3.0]).prop_map(MetaValue::Double),
            any::<bool>().prop_map(MetaValue::Bool),
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3)
                .prop_map(|v| MetaValue::StringList(v.into_iter().map(String::from).collect())),
        ]
    }

    fn metadata() -> impl Strategy<Value = Metadata> {
        prop::collection::btree_map(
            prop::sample::select(vec!["k", "m", "n"]).prop_map(String::from),
            value(),
            0..3,
        )
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let key = prop::sample::select(vec!["k", "m", "n"]).prop_map(String::from);
        let leaf = prop_oneof![
            (key.clone(), value()).prop_map(|(key, value)| Filter::Equals { key, value }),
            (key.clone(), prop::collection::vec(value(), 0..3))
                .prop_map(|(key, values)| Filter::In { key, values }),
            (
                key,
                prop::option::of(-2.0f64..3.0),
                prop::option::of(-2.0f64..3.0)
            )
                .prop_map(|(key, gte, lt)| Filter::Range {
                    key,
                    gte,
                    gt: None,
                    lte: None,
                    lt,
                }),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
                prop::collection::vec(inner, 1..3).prop_map(Filter::Or),
            ]
        })
    }

    proptest! {
        #[test]
        fn candidates_contain_every_match_after_any_updates(
            docs in prop::collection::vec(metadata(), 1..30),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            filters in prop::collection::vec(filter(), 1..8),
        ) {
            let mut index = MetaIndex::default();
            let mut live: HashMap<u32, Metadata> = HashMap::new();
            for (i, m) in docs.iter().enumerate() {
                index.insert(i as u32, &fields(m));
                live.insert(i as u32, m.clone());
            }
            for r in removed {
                let i = r.index(docs.len()) as u32;
                if let Some(m) = live.remove(&i) {
                    index.remove(i, &fields(&m));
                }
            }
            for f in &filters {
                let matching: HashSet<u32> = live
                    .iter()
                    .filter(|(_, m)| f.matches(m))
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(c) = index.candidates(f) {
                    prop_assert!(matching.is_subset(&c), "{f:?}: {matching:?} not in {c:?}");
                    prop_assert!(c.iter().all(|id| live.contains_key(id)), "removed doc in {c:?}");
                }
            }
        }
    }
}
