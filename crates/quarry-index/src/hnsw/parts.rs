//! The graph as arrays, for checkpoints: borrowed to be saved, and rebuilt
//! from loaded arrays with every length, level and link checked.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::{Codes, Graph, Metric, Parts, Rows, Shape, COUNT, HAS_EXTRA, MAX_LEVEL, NO_UPPER};

impl Graph {
    /// The arrays to save.
    pub fn parts(&self) -> Parts<'_> {
        let mut extra: Vec<(u32, u32)> = self
            .extra
            .iter()
            .flat_map(|(&from, to)| to.iter().map(move |&t| (from, t)))
            .collect();
        extra.sort_unstable();
        Parts {
            vectors: self.vectors.pieces().collect(),
            ids: &self.ids,
            levels: &self.levels,
            links0: &self.links0,
            upper: &self.upper,
            extra,
            codes: self.codes.as_ref().map(|c| c.rows.pieces().collect()),
        }
    }

    /// A graph from saved arrays, every length, level and link checked
    /// (an error says what does not fit); `codes` makes it quantised.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        metric: Metric,
        shape: Shape,
        entry: u32,
        vectors: Rows,
        ids: Vec<u64>,
        levels: Vec<u8>,
        links0: Vec<AtomicU32>,
        upper: Vec<AtomicU32>,
        extra: &[(u32, u32)],
        codes: Option<Rows<i8>>,
    ) -> Result<Self, String> {
        let mut g = Self::new(metric, shape.m, shape.ef_construction);
        if g.shape.m != shape.m || shape.m == 0 {
            return Err(format!("M is {}", shape.m));
        }
        g.shape.dim = shape.dim;
        let n = ids.len();
        if n > u32::MAX as usize / 2 {
            return Err(format!("{n} points"));
        }
        if vectors.len() != n || levels.len() != n || links0.len() != n * g.stride0() {
            return Err(format!(
                "{n} points but {} vectors, {} levels and {} layer-0 words",
                vectors.len(),
                levels.len(),
                links0.len()
            ));
        }
        if n > 0 && (shape.dim == 0 || vectors.row(0).len() != shape.dim) {
            return Err(format!(
                "vectors of the wrong dimension (not {})",
                shape.dim
            ));
        }
        if let Some(codes) = &codes {
            let width = Codes::width(shape.dim);
            if codes.len() != n || (n > 0 && codes.row(0).len() != width) {
                return Err(format!(
                    "{n} points but {} rows of codes (of {width} bytes)",
                    codes.len()
                ));
            }
        }
        let mut upper_at = Vec::with_capacity(n);
        let mut words = 0usize;
        for &level in &levels {
            if level > MAX_LEVEL {
                return Err(format!("level {level}"));
            }
            if level == 0 {
                upper_at.push(NO_UPPER);
            } else {
                upper_at.push(words as u32);
                words += level as usize * g.stride_upper();
            }
        }
        if words != upper.len() {
            return Err(format!(
                "the levels need {words} upper-layer words, the file has {}",
                upper.len()
            ));
        }
        let check = |list: &[AtomicU32], cap: usize| -> Result<(), String> {
            let count = (list[0].load(Relaxed) & COUNT) as usize;
            if count > cap {
                return Err(format!("a list of {count} links (at most {cap})"));
            }
            match list[1..=count]
                .iter()
                .map(|w| w.load(Relaxed))
                .find(|&l| l as usize >= n)
            {
                Some(bad) => Err(format!("a link to point {bad} of {n}")),
                None => Ok(()),
            }
        };
        for list in links0.chunks_exact(g.stride0()) {
            list[0].fetch_and(!HAS_EXTRA, Relaxed);
            check(list, g.m0())?;
        }
        for list in upper.chunks_exact(g.stride_upper()) {
            check(list, g.shape.m)?;
        }
        if n > 0 {
            if entry as usize >= n {
                return Err(format!("entry point {entry} of {n}"));
            }
            g.top = levels[entry as usize];
            if levels.iter().any(|&l| l > g.top) {
                return Err("a point above the entry point's level".into());
            }
        }
        g.entry = entry;
        g.vectors = vectors;
        g.ids = ids;
        g.levels = levels;
        g.links0 = links0;
        g.upper_at = upper_at;
        g.upper = upper;
        g.codes = codes.map(|rows| Codes::from_rows(rows, shape.dim));
        for &(from, to) in extra {
            if from as usize >= n || to as usize >= n {
                return Err(format!("a repair link {from} -> {to} of {n}"));
            }
            g.add_extra(from, to);
        }
        Ok(g)
    }
}

impl Graph {
    /// Takes `vectors` (and `codes`) in place of the rows held, when they
    /// are as many rows of the same width (the caller vouches that they
    /// hold the same values: the checkpoint just written of this graph).
    pub(crate) fn adopt_rows(&mut self, vectors: Rows, codes: Option<Rows<i8>>) -> bool {
        let n = self.len();
        let dim = self.shape.dim;
        let fits = vectors.len() == n
            && (n == 0 || vectors.row(0).len() == dim)
            && match (&codes, &self.codes) {
                (None, None) => true,
                (Some(c), Some(_)) => {
                    c.len() == n && (n == 0 || c.row(0).len() == Codes::width(dim))
                }
                _ => false,
            };
        if !fits {
            return false;
        }
        self.vectors = vectors;
        if let Some(rows) = codes {
            self.codes = Some(Codes::from_rows(rows, dim));
        }
        true
    }
}
