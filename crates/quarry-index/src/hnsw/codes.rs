//! Int8 scalar quantisation of the graph's vectors: each vector as one
//! signed byte per dimension, with its own scale and offset, so that a
//! search reads a quarter of the bytes per distance, and the floats can
//! stay in their memory-mapped checkpoint file, read only to rescore.
//!
//! A row of `dim` floats `x` becomes codes `c` in -128..=127 with
//! `x ≈ offset + scale·c`, where the row's minimum maps to -128 and its
//! maximum to 127 (so each row uses all 256 levels, whatever its range).
//! Then for a float query `q`:
//!
//! - `q·x ≈ offset·Σq + scale·(q·c)`, one float-by-byte dot product;
//! - `|q - x|² ≈ |q|² - 2 q·x + |x'|²`, with `|x'|²` (the decoded row's
//!   squared norm) stored beside the codes.
//!
//! The query stays in floats (asymmetric distance): only the stored side
//! loses precision. Each row is its codes followed by scale, offset and
//! squared norm as 12 little-endian bytes, so a distance touches one
//! contiguous run of memory. The graph is still built with the floats
//! (neighbour choice is where precision matters); searches walk it with the
//! codes and rescore their candidates with the floats.

use super::Rows;
use crate::distance::{code_kernel, CodeKernel, Metric};

/// Bytes after the codes in each row: scale, offset, squared norm.
const TAIL: usize = 12;

/// The codes of every point, row `slot` for each.
pub(crate) struct Codes {
    pub(crate) rows: Rows<i8>,
    dim: usize,
    kernel: CodeKernel,
}

/// What a distance to a query needs besides the query, computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepared {
    sum: f32,
    norm2: f32,
}

/// Quantises `row` onto the end of `out` (codes, then the 12-byte tail).
fn encode(row: &[f32], out: &mut Vec<i8>) {
    let (lo, hi) = row
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let (scale, offset) = if row.is_empty() || hi <= lo || !(hi - lo).is_finite() {
        (0.0, if lo.is_finite() { lo } else { 0.0 })
    } else {
        let scale = (hi - lo) / 255.0;
        (scale, lo + 128.0 * scale)
    };
    let mut norm2 = 0f32;
    for &x in row {
        let c = if scale > 0.0 {
            ((x - offset) / scale).round().clamp(-128.0, 127.0)
        } else {
            0.0
        };
        let decoded = offset + scale * c;
        norm2 += decoded * decoded;
        out.push(c as i8);
    }
    for v in [scale, offset, norm2] {
        out.extend(v.to_le_bytes().map(|b| b as i8));
    }
}

/// A row's scale, offset and decoded squared norm, from its tail.
#[inline]
fn tail(bytes: &[i8]) -> [f32; 3] {
    let bytes: &[u8] = bytemuck::cast_slice(bytes);
    std::array::from_fn(|i| {
        let b = &bytes[4 * i..4 * i + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    })
}

impl Codes {
    /// No rows yet.
    pub(crate) fn new() -> Self {
        Self::from_rows(Rows::new(), 0)
    }

    /// Loaded rows of vectors of `dim` (rows of `dim + 12` bytes).
    pub(crate) fn from_rows(rows: Rows<i8>, dim: usize) -> Self {
        Self {
            rows,
            dim,
            kernel: code_kernel(),
        }
    }

    /// The row width in bytes for vectors of `dim`.
    pub(crate) fn width(dim: usize) -> usize {
        dim + TAIL
    }

    /// Sets the vectors' dimension (while empty).
    pub(crate) fn set_dim(&mut self, dim: usize) {
        self.dim = dim;
        self.rows.set_dim(Self::width(dim));
    }

    /// Room for `more` rows.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.rows.reserve(more);
    }

    /// Appends the codes of `row`.
    pub(crate) fn push(&mut self, row: &[f32]) {
        let mut out = Vec::with_capacity(Self::width(row.len()));
        encode(row, &mut out);
        self.rows.push(&out);
    }

    /// The query-side sums.
    pub(crate) fn prepare(q: &[f32]) -> Prepared {
        Prepared {
            sum: q.iter().sum(),
            norm2: q.iter().map(|x| x * x).sum(),
        }
    }

    /// The start of a row, to prefetch.
    #[inline]
    pub(crate) fn row_ptr(&self, slot: u32) -> *const i8 {
        self.rows.row(slot as usize).as_ptr()
    }

    /// The distance from `q` to the decoded row `slot`, in `metric`.
    #[inline]
    pub(crate) fn distance(&self, metric: Metric, q: &[f32], p: &Prepared, slot: u32) -> f32 {
        let row = self.rows.row(slot as usize);
        let (codes, rest) = row.split_at(self.dim);
        let [scale, offset, norm2] = tail(rest);
        let dot = offset * p.sum + scale * (self.kernel)(q, codes);
        match metric {
            Metric::Dot => 1.0 - dot,
            Metric::L2 => p.norm2 - 2.0 * dot + norm2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(row: &[i8], dim: usize) -> Vec<f32> {
        let [scale, offset, _] = tail(&row[dim..]);
        row[..dim]
            .iter()
            .map(|&c| offset + scale * c as f32)
            .collect()
    }

    proptest! {
        /// Each decoded value is within half a step of the original, and
        /// the distances from the codes match the decoded rows'.
        #[test]
        fn codes_decode_within_half_a_step_and_distances_agree(
            row in proptest::collection::vec(-3.0f32..3.0, 1..80),
            q in proptest::collection::vec(-1.0f32..1.0, 80),
        ) {
            let dim = row.len();
            let q = &q[..dim];
            let mut codes = Codes::new();
            codes.set_dim(dim);
            codes.push(&row);
            let stored = codes.rows.row(0);
            let decoded = decode(stored, dim);
            let (lo, hi) = row.iter().fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            let step = (hi - lo) / 255.0;
            for (x, d) in row.iter().zip(&decoded) {
                prop_assert!((x - d).abs() <= step * 0.5 + 1e-5, "{x} decoded as {d}");
            }
            let p = Codes::prepare(q);
            let dot: f32 = q.iter().zip(&decoded).map(|(a, b)| a * b).sum();
            let l2: f32 = q.iter().zip(&decoded).map(|(a, b)| (a - b) * (a - b)).sum();
            let tol = 1e-3 * (1.0 + dim as f32);
            prop_assert!((codes.distance(Metric::Dot, q, &p, 0) - (1.0 - dot)).abs() < tol);
            prop_assert!((codes.distance(Metric::L2, q, &p, 0) - l2).abs() < tol);
        }
    }

    #[test]
    fn a_constant_row_decodes_exactly() {
        let mut codes = Codes::new();
        codes.set_dim(4);
        codes.push(&[0.25; 4]);
        assert_eq!(decode(codes.rows.row(0), 4), vec![0.25; 4]);
    }
}
