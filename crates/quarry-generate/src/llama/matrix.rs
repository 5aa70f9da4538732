//! Quantized weight matrices and their products with quantized
//! activations, split across the thread team.

use crate::GenerateError;

use super::quant::{
    self, dot4_kernel, dot8_kernel, dot_kernel, Dot4Kernel, Dot8Kernel, DotKernel, Q8Block,
    WeightType, QK,
};
use super::team::{SharedMut, Team};

/// Fewest weight rows in one parallel work item.
const MIN_ROWS_PER_TASK: usize = 16;

/// A quantized matrix, row-major, one row per output, packed (see
/// [`quant::pack`]).
pub(super) struct Matrix {
    pub(super) kind: WeightType,
    pub(super) rows: usize,
    blocks_per_row: usize,
    scales: Vec<f32>,
    quants: Vec<u8>,
    dot: DotKernel,
    dot4: Dot4Kernel,
    dot8: Option<Dot8Kernel>,
}

impl Matrix {
    /// A matrix from GGML blocks of `kind` (`rows` rows of `cols` values).
    pub(super) fn from_blocks(
        name: &str,
        kind: WeightType,
        rows: usize,
        cols: usize,
        blocks: &[u8],
    ) -> Result<Self, GenerateError> {
        if !cols.is_multiple_of(QK) || blocks.len() != rows * cols / QK * kind.block_bytes() {
            return Err(GenerateError::Model(format!(
                "matrix {name}: {} bytes of {kind:?} for [{rows}, {cols}] (columns must be a multiple of {QK})",
                blocks.len()
            )));
        }
        let (scales, quants) = quant::pack(kind, blocks);
        Ok(Self {
            kind,
            rows,
            blocks_per_row: cols / QK,
            scales,
            quants,
            dot: dot_kernel(kind),
            dot4: dot4_kernel(kind),
            dot8: dot8_kernel(kind),
        })
    }

    /// A matrix from f32 values, row-major, quantized to Q8_0 (weights in
    /// formats without a kernel here: F16, BF16, F32, K-quants).
    pub(super) fn from_f32(
        name: &str,
        rows: usize,
        cols: usize,
        values: &[f32],
    ) -> Result<Self, GenerateError> {
        if values.len() != rows * cols || !cols.is_multiple_of(QK) {
            return Err(GenerateError::Model(format!(
                "matrix {name}: {} values for [{rows}, {cols}] (columns must be a multiple of {QK})",
                values.len()
            )));
        }
        Self::from_blocks(
            name,
            WeightType::Q8_0,
            rows,
            cols,
            &quant::q8_0_blocks(values),
        )
    }

    pub(super) fn row(&self, r: usize) -> (&[f32], &[u8]) {
        let (s, q) = (
            self.blocks_per_row * self.kind.scales_per_block(),
            self.blocks_per_row * self.kind.quant_bytes(),
        );
        (
            &self.scales[r * s..(r + 1) * s],
            &self.quants[r * q..(r + 1) * q],
        )
    }
}

/// The products of several matrices with the same activation rows, in one
/// parallel section: each section wakes the team, which in decoding (one
/// activation row, small matrices) costs as much as the arithmetic. Work
/// items are row ranges across all the matrices; each weight row meets
/// every activation row while it is in cache, which is what makes a
/// batched prompt cheaper per token than decoding. `outs[i]` receives
/// matrix i's `[acts.len() x rows]`; `scratch` is reused between calls (a
/// prompt's buffers are megabytes, and fresh ones cost page faults).
pub(super) fn matmul_group(
    mats: &[&Matrix],
    acts: &[Vec<Q8Block>],
    outs: &mut [&mut Vec<f32>],
    scratch: &mut Vec<f32>,
) {
    let n = acts.len();
    let team = Team::global();
    let total: usize = mats.iter().map(|m| m.rows).sum();
    let tasks = team.size() * if n == 1 { 1 } else { 4 };
    let chunk = total.div_ceil(tasks).max(MIN_ROWS_PER_TASK);
    let mut offsets = Vec::with_capacity(mats.len());
    let mut offset = 0;
    for m in mats {
        offsets.push(offset);
        offset += m.rows * n;
    }
    let items: Vec<(usize, usize, usize)> = mats
        .iter()
        .enumerate()
        .flat_map(|(mi, m)| {
            (0..m.rows)
                .step_by(chunk)
                .map(move |start| (mi, start, (start + chunk).min(m.rows)))
        })
        .collect();
    // Row-major by weight row: item (mi, start, end) owns rows start..end
    // of matrix mi, a range no other item touches.
    scratch.clear();
    scratch.resize(offset, 0.0);
    let by_row = SharedMut(scratch.as_mut_ptr());
    team.run(&|member, size| {
        for &(mi, start, end) in items.iter().skip(member).step_by(size) {
            let m = mats[mi];
            // SAFETY: rows start..end of matrix mi belong to this item only,
            // and `scratch` outlives the section.
            let out = unsafe {
                std::slice::from_raw_parts_mut(
                    by_row.ptr().add(offsets[mi] + start * n),
                    (end - start) * n,
                )
            };
            let mut out = out.iter_mut();
            for r in start..end {
                let (scales, quants) = m.row(r);
                let mut rest = acts;
                if let Some(dot8) = m.dot8 {
                    let mut eights = acts.chunks_exact(8);
                    for g in eights.by_ref() {
                        let v = dot8(scales, quants, std::array::from_fn(|i| g[i].as_slice()));
                        for v in v {
                            *out.next().expect("sized to rows x acts") = v;
                        }
                    }
                    rest = eights.remainder();
                }
                let mut groups = rest.chunks_exact(4);
                for g in groups.by_ref() {
                    let four = (m.dot4)(scales, quants, [&g[0], &g[1], &g[2], &g[3]]);
                    for v in four {
                        *out.next().expect("sized to rows x acts") = v;
                    }
                }
                for act in groups.remainder() {
                    *out.next().expect("sized to rows x acts") = (m.dot)(scales, quants, act);
                }
            }
        }
    });
    // Every element of each output is written below, so an output already
    // of the right size (the same product in the next layer) is not
    // zeroed again.
    for (out, m) in outs.iter_mut().zip(mats) {
        if out.len() != n * m.rows {
            out.clear();
            out.resize(n * m.rows, 0.0);
        }
    }
    if n == 1 {
        for ((out, m), off) in outs.iter_mut().zip(mats).zip(&offsets) {
            out.copy_from_slice(&scratch[*off..*off + m.rows]);
        }
        return;
    }
    // Weight-row-major to activation-row-major, split across the team by
    // activation rows (serial, it was a tenth of a long prompt's time).
    let targets: Vec<SharedMut> = outs.iter_mut().map(|o| SharedMut(o.as_mut_ptr())).collect();
    let source = &*scratch;
    team.run(&|member, size| {
        let rows = (member * n / size)..((member + 1) * n / size);
        for ((target, m), off) in targets.iter().zip(mats).zip(&offsets) {
            let by_row = &source[*off..*off + m.rows * n];
            for j in rows.clone() {
                // SAFETY: activation row j of each output belongs to this
                // member only, and the outputs outlive the section.
                let out =
                    unsafe { std::slice::from_raw_parts_mut(target.ptr().add(j * m.rows), m.rows) };
                for (r, o) in out.iter_mut().enumerate() {
                    *o = by_row[r * n + j];
                }
            }
        }
    });
}
