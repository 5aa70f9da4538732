//! The graph's vectors (and their int8 codes): the rows of a checkpoint's
//! file, mapped into memory, then the rows added since, in an ordinary
//! array.
//!
//! Mapping is what makes a restart fast and the index lean: the file's
//! pages are already in the page cache (the checkpoint wrote or read
//! them), so the rows cost no copy and no freshly zeroed memory (on this
//! machine, first-touch page faults on anonymous memory were half of a
//! million-chunk restart), only the pages a search touches count as the
//! process's own, and under memory pressure the kernel can drop clean
//! pages and read them back instead of swapping.
//!
//! A checkpoint file is never modified after it is written: a new
//! checkpoint is a new directory, and removing the old one keeps a
//! mapping valid until it is unmapped. Truncating a mapped file behind the
//! server's back would fault the process (SIGBUS), as it would for any
//! memory-mapped database.

use std::fs::File;
use std::path::Path;

/// Rows of `dim` values (floats unless said otherwise).
pub(crate) struct Rows<T: bytemuck::Pod = f32> {
    mapped: Option<memmap2::Mmap>,
    /// Rows in the mapping.
    base: usize,
    owned: Vec<T>,
    dim: usize,
}

impl<T: bytemuck::Pod> Rows<T> {
    pub(crate) fn new() -> Self {
        Self {
            mapped: None,
            base: 0,
            owned: Vec::new(),
            dim: 0,
        }
    }

    /// Rows held in memory.
    pub(crate) fn owned(owned: Vec<T>, dim: usize) -> Self {
        Self {
            mapped: None,
            base: 0,
            owned,
            dim,
        }
    }

    /// The rows of a little-endian file of `T` (its length already
    /// checked to be a whole number of rows).
    pub(crate) fn map(path: &Path, dim: usize) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len() as usize;
        if dim == 0 || len == 0 {
            return Ok(Self::owned(Vec::new(), dim));
        }
        let row = std::mem::size_of::<T>() * dim;
        if !len.is_multiple_of(row) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{len} bytes is not a whole number of {row}-byte rows"),
            ));
        }
        // SAFETY: checkpoint files are immutable once written (see the
        // module docs); the mapping is read-only.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        if map.len() != len {
            return Err(std::io::Error::other(
                "the mapping is shorter than the file",
            ));
        }
        // Searches read rows at random: read ahead no further than a page
        // around each fault.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Self {
            base: len / row,
            mapped: Some(map),
            owned: Vec::new(),
            dim,
        })
    }

    /// Sets the row length (for the first rows of an empty graph).
    pub(crate) fn set_dim(&mut self, dim: usize) {
        debug_assert!(self.len() == 0);
        self.dim = dim;
    }

    /// Rows in all.
    pub(crate) fn len(&self) -> usize {
        self.base + self.owned.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Room for `more` rows without reallocating.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.owned.reserve(more * self.dim);
    }

    pub(crate) fn push(&mut self, row: &[T]) {
        self.owned.extend_from_slice(row);
    }

    fn mapped_values(&self) -> &[T] {
        self.mapped
            .as_ref()
            .map_or(&[][..], |m| bytemuck::cast_slice(&m[..]))
    }

    #[inline]
    pub(crate) fn row(&self, slot: usize) -> &[T] {
        if slot < self.base {
            &self.mapped_values()[slot * self.dim..(slot + 1) * self.dim]
        } else {
            let start = (slot - self.base) * self.dim;
            &self.owned[start..start + self.dim]
        }
    }

    /// The rows as pieces of contiguous values, in order (for saving).
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &[T]> {
        [self.mapped_values(), &self.owned[..]]
            .into_iter()
            .filter(|p| !p.is_empty())
    }
}
