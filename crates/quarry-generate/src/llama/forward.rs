//! One forward pass over several sequences at once: each brings its own
//! tokens (a prompt slice, or the one token it is decoding) and its own
//! cache, and their rows go through every weight matrix together.
//!
//! Decoding a small model is bound by reading its weights, so eight
//! sequences decoded in one pass cost little more than one. Every
//! operation is per row (norms, quantization, the matrix kernels, whose
//! multi-row versions give each row the one-row kernel's bits, RoPE at the
//! row's own position, attention over the row's own cache), so a sequence
//! gets the same logits, bit for bit, whichever sequences share its pass
//! and however its prompt was sliced.

use crate::GenerateError;

use super::matrix::matmul_group;
use super::quant::{dequantize_row, Q8Block};
use super::team::{SharedMut, Team};
use super::{attention, normed_acts, quantized, rms_norm, rope, KvCache, LlamaModel};

/// One sequence's share of a pass.
pub struct BatchStep<'a> {
    /// Tokens to run at the cache's next positions.
    pub tokens: &'a [u32],
    /// The sequence's cache; the tokens' keys and values are appended.
    pub cache: &'a mut KvCache,
    /// Whether to return the next-token logits after its last token.
    pub logits: bool,
}

impl LlamaModel {
    /// Runs every step's tokens in one pass; returns, per step, the
    /// next-token logits after its last token when it asked for them.
    /// Nothing is written to any cache when a step is invalid.
    pub fn forward_batch(
        &self,
        steps: &mut [BatchStep<'_>],
    ) -> Result<Vec<Option<Vec<f32>>>, GenerateError> {
        let c = &self.config;
        for step in steps.iter() {
            if let Some(bad) = step.tokens.iter().find(|t| **t as usize >= c.vocab_size) {
                return Err(GenerateError::Model(format!(
                    "token {bad} is outside the vocabulary ({})",
                    c.vocab_size
                )));
            }
            if step.cache.len + step.tokens.len() > c.context_length {
                return Err(GenerateError::Model(format!(
                    "{} cached + {} new tokens exceed the context window of {}",
                    step.cache.len,
                    step.tokens.len(),
                    c.context_length
                )));
            }
        }
        // Row r belongs to step owner[r], at position pos[r] of its cache.
        let mut owner = Vec::new();
        let mut pos = Vec::new();
        for (s, step) in steps.iter().enumerate() {
            for i in 0..step.tokens.len() {
                owner.push(s);
                pos.push(step.cache.len + i);
            }
        }
        let n = owner.len();
        if n == 0 {
            return Ok(steps.iter().map(|_| None).collect());
        }
        // Attention work items: runs of up to TILE consecutive rows of one
        // sequence (first row, rows).
        let mut tiles = Vec::new();
        let mut first = 0;
        for step in steps.iter() {
            let end = first + step.tokens.len();
            for r in (first..end).step_by(attention::TILE) {
                tiles.push((r, attention::TILE.min(end - r)));
            }
            first = end;
        }
        let (dim, kv_dim, hd) = (c.n_embd, c.kv_dim(), c.head_dim());
        let mut x = vec![0f32; n * dim];
        for (row, t) in x
            .chunks_exact_mut(dim)
            .zip(steps.iter().flat_map(|s| s.tokens.iter()))
        {
            let (scales, quants) = self.embedding.row(*t as usize);
            dequantize_row(self.embedding.kind, scales, quants, row);
        }
        let mut xn = vec![0f32; n * dim];
        let mut scratch = Vec::new();
        let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let (mut proj, mut g, mut u) = (Vec::new(), Vec::new(), Vec::new());
        let mut attn = vec![0f32; n * dim];
        let shape = attention::Shape {
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: hd,
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let acts = normed_acts(&x, &layer.attn_norm, c.eps, &mut xn);
            matmul_group(
                &[&layer.wq, &layer.wk, &layer.wv],
                &acts,
                &mut [&mut q, &mut k, &mut v],
                &mut scratch,
            );
            for (out, bias) in [
                (&mut q, &layer.bq),
                (&mut k, &layer.bk),
                (&mut v, &layer.bv),
            ] {
                if let Some(bias) = bias {
                    for row in out.chunks_exact_mut(bias.len()) {
                        row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
                    }
                }
            }
            let factors = self.rope_factors.as_deref();
            for (r, p) in pos.iter().enumerate() {
                for (x, width) in [(&mut q, dim), (&mut k, kv_dim)] {
                    rope(
                        &mut x[r * width..(r + 1) * width],
                        hd,
                        *p,
                        c.rope_base,
                        c.rope_style,
                        factors,
                    );
                }
            }
            // Each step's new keys and values join its cache (rows are in
            // step order, so step s holds a contiguous run of them).
            let mut first = 0;
            for step in steps.iter_mut() {
                let rows = first..first + step.tokens.len();
                first = rows.end;
                for (stored, new) in [(&mut step.cache.k[l], &k), (&mut step.cache.v[l], &v)] {
                    attention::push_f16(&new[rows.start * kv_dim..rows.end * kv_dim], stored);
                }
            }
            let caches: Vec<(&[u16], &[u16])> = steps
                .iter()
                .map(|s| (s.cache.k[l].as_slice(), s.cache.v[l].as_slice()))
                .collect();
            let out = SharedMut(attn.as_mut_ptr());
            let (owner, pos, q, tiles) = (&owner, &pos, &q, &tiles);
            Team::global().run(&|member, size| {
                if n == 1 {
                    // One row (one sequence decoding): the members split
                    // its heads.
                    let (keys, values) = caches[owner[0]];
                    let heads = attention::Heads {
                        first: member,
                        step: size,
                    };
                    // SAFETY: `attn` outlives the section, and each member
                    // writes only its heads.
                    attention::attend_rows(
                        shape,
                        heads,
                        &q[..dim],
                        1,
                        keys,
                        values,
                        pos[0] + 1,
                        out.ptr(),
                    );
                    return;
                }
                // More: the members take tiles in turn (a decoding
                // sequence's row is a tile of one).
                for &(r, rows) in tiles.iter().skip(member).step_by(size) {
                    let (keys, values) = caches[owner[r]];
                    attention::attend_rows(
                        shape,
                        attention::Heads::ALL,
                        &q[r * dim..(r + rows) * dim],
                        rows,
                        keys,
                        values,
                        pos[r] + 1,
                        // SAFETY: `attn` outlives the section, and each
                        // tile's rows belong to one member.
                        unsafe { out.ptr().add(r * dim) },
                    );
                }
            });
            let acts: Vec<Vec<Q8Block>> = attn.chunks_exact(dim).map(quantized).collect();
            matmul_group(&[&layer.wo], &acts, &mut [&mut proj], &mut scratch);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            let acts = normed_acts(&x, &layer.ffn_norm, c.eps, &mut xn);
            matmul_group(
                &[&layer.gate, &layer.up],
                &acts,
                &mut [&mut g, &mut u],
                &mut scratch,
            );
            super::vexp::swiglu(&mut g, &u);
            let acts: Vec<Vec<Q8Block>> = g.chunks_exact(c.n_ff).map(quantized).collect();
            matmul_group(&[&layer.down], &acts, &mut [&mut proj], &mut scratch);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        for step in steps.iter_mut() {
            step.cache.len += step.tokens.len();
        }
        // The output projection (the largest matrix) once for every
        // sequence that wants logits.
        let mut last_rows = Vec::new();
        let mut end = 0;
        for step in steps.iter() {
            end += step.tokens.len();
            if step.logits && !step.tokens.is_empty() {
                let mut normed = vec![0f32; dim];
                rms_norm(
                    &x[(end - 1) * dim..end * dim],
                    &self.output_norm,
                    c.eps,
                    &mut normed,
                );
                last_rows.push(quantized(&normed));
            }
        }
        let output = self.output.as_ref().unwrap_or(&self.embedding);
        let mut logits = Vec::new();
        if !last_rows.is_empty() {
            matmul_group(&[output], &last_rows, &mut [&mut logits], &mut scratch);
        }
        let vocab = output.rows;
        let mut rows = logits.chunks_exact(vocab);
        Ok(steps
            .iter()
            .map(|s| {
                (s.logits && !s.tokens.is_empty())
                    .then(|| rows.next().expect("one row per step asking").to_vec())
            })
            .collect())
    }
}
