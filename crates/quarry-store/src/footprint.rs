//! What the store holds, tree by tree, beside what it takes on disk: where
//! the on-disk overhead comes from.

use crate::{Result, Store};

/// One tree's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFootprint {
    /// The tree's name (see the crate docs' layout).
    pub name: &'static str,
    /// Entries in it.
    pub entries: u64,
    /// Bytes of its keys.
    pub key_bytes: u64,
    /// Bytes of its values.
    pub value_bytes: u64,
}

/// The store's contents and its size on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// Every tree, in the crate docs' order.
    pub trees: Vec<TreeFootprint>,
    /// sled's own count of the bytes its files take.
    pub on_disk: u64,
}

impl Footprint {
    /// Bytes of every key and value.
    pub fn held(&self) -> u64 {
        self.trees.iter().map(|t| t.key_bytes + t.value_bytes).sum()
    }
}

impl Store {
    /// Walks every tree (slow on a large store: for benchmarks and
    /// diagnostics).
    pub fn footprint(&self) -> Result<Footprint> {
        let trees = [
            ("meta", &self.meta),
            ("collections", &self.collections),
            ("documents", &self.documents),
            ("chunks", &self.chunks),
            ("vectors", &self.vectors),
            ("oplog", &self.oplog),
            ("records", &self.records),
            ("sessions", &self.sessions),
            ("purges", &self.purges),
        ];
        let mut out = Vec::with_capacity(trees.len());
        for (name, tree) in trees {
            let mut t = TreeFootprint {
                name,
                entries: 0,
                key_bytes: 0,
                value_bytes: 0,
            };
            for entry in tree.iter() {
                let (k, v) = entry?;
                t.entries += 1;
                t.key_bytes += k.len() as u64;
                t.value_bytes += v.len() as u64;
            }
            out.push(t);
        }
        Ok(Footprint {
            trees: out,
            on_disk: self.db.size_on_disk()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::{CollectionName, CollectionSettings};

    #[test]
    fn the_footprint_counts_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let name = CollectionName::parse("c").unwrap();
        store
            .create_collection(&name, CollectionSettings::default())
            .unwrap();
        let f = store.footprint().unwrap();
        let collections = f.trees.iter().find(|t| t.name == "collections").unwrap();
        assert_eq!(collections.entries, 1);
        assert_eq!(collections.key_bytes, 1);
        assert!(collections.value_bytes > 10);
        assert!(f.held() >= collections.value_bytes);
        assert!(f.on_disk > 0);
    }
}
