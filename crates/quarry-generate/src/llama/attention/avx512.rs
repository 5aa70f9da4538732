//! The AVX-512 attention kernel: the AVX2 kernel's operations in its
//! order, with the loops blocked so that values stay in registers.
//!
//! ggml's sums run in 16 lanes, which is one AVX-512 register: a score's
//! 16-lane partial sums are one accumulator, so three query rows times
//! eight positions (24 accumulators) are computed from one load of each
//! key, instead of two loads per multiply-add. A weighted sum's 16 lane
//! classes (position `j` goes to class `j % 16`) are independent chains,
//! so each class is summed over its positions, in order, with its
//! accumulators in registers for four rows at once, instead of a load
//! and a store of the accumulator per position. Every score, softmax and
//! weighted sum gets the bits of [`super::avx2`]'s (tested in
//! [`super`]).

use std::arch::x86_64::*;

use super::avx2::{axpy, dot16, reduce_classes, round_f16, scores8, transpose8, tree16};
use super::{head_out, softmax_f16, Heads, Shape, LANES};

/// Query rows whose scores are computed together.
const SCORE_ROWS: usize = 3;
/// Rows whose weighted sums are computed together.
const SUM_ROWS: usize = 4;
/// Floats of a head's dimension a weighted-sum block holds (4 registers).
const DIM_BLOCK: usize = 64;
/// Positions whose keys every group of rows meets before the next block.
const KEY_BLOCK: usize = 128;
/// Positions whose values every group of rows meets before the next block.
const VALUE_BLOCK: usize = 256;

/// The lower and upper eight lanes of `v` added: the AVX2 kernel's
/// `lo + hi`.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn halves(v: __m512) -> __m256 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    _mm256_add_ps(lo, hi)
}

/// Scores of rows `i0..i0 + R` against positions `j..j + 8` (which every
/// one of them attends over), scaled, into their score rows.
///
/// # Safety
/// The CPU has AVX-512F, AVX2 and FMA; positions `j..j + 8` are cached;
/// each row's scores hold at least `j + 8` values; `hd` is a multiple of
/// 16.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn score_block<const R: usize>(
    qs: &[f32],
    hd: usize,
    i0: usize,
    keys: &[u16],
    kv_dim: usize,
    offset: usize,
    j: usize,
    scale: f32,
    scores: &mut [f32],
    stride: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 8]; R];
    let kp = keys.as_ptr();
    let qp = qs.as_ptr();
    for c in (0..hd).step_by(LANES) {
        // SAFETY: rows i0..i0+R of `qs` hold `hd` floats each and c + 16
        // <= hd; positions j..j+8 are cached (the contract).
        unsafe {
            // Loops rather than closures: a closure would not inherit this
            // function's target features.
            let mut qv = [_mm512_setzero_ps(); R];
            for (r, v) in qv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(qp.add((i0 + r) * hd + c));
            }
            // Indexed by position and row: the block of accumulators is
            // what stays in registers.
            #[allow(clippy::needless_range_loop)]
            for p in 0..8 {
                let kv = _mm512_cvtph_ps(_mm256_loadu_si256(
                    kp.add((j + p) * kv_dim + offset + c).cast(),
                ));
                for r in 0..R {
                    acc[r][p] = _mm512_fmadd_ps(qv[r], kv, acc[r][p]);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let mut s8 = [_mm256_setzero_ps(); 8];
        for (s, a) in s8.iter_mut().zip(acc) {
            *s = halves(*a);
        }
        let t = transpose8(s8);
        let mut s4 = [_mm256_setzero_ps(); 4];
        for (i, s) in s4.iter_mut().enumerate() {
            *s = _mm256_add_ps(t[i], t[i + 4]);
        }
        let s2 = [_mm256_add_ps(s4[0], s4[2]), _mm256_add_ps(s4[1], s4[3])];
        let s1 = _mm256_mul_ps(_mm256_add_ps(s2[0], s2[1]), _mm256_set1_ps(scale));
        let at = (i0 + r) * stride + j;
        assert!(at + 8 <= scores.len());
        // SAFETY: inside `scores` (asserted).
        unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(at), s1) };
    }
}

/// Lane class `c` of the weighted sums of rows `i0..i0 + R`, for the
/// dimension block `d0..d0 + 16 * W`, continued over the positions of
/// class `c` in `from..to` (which every row attends to), in `classes`
/// (zeroed before the first block: the chain starts at 0 as the AVX2
/// kernel's does).
///
/// # Safety
/// The CPU has AVX-512F; positions below `to` are cached; `d0 + 16 W <=
/// hd`. (`R` and `W` are constants so that the accumulators stay in
/// registers.)
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,fma,f16c")]
unsafe fn sum_block<const R: usize, const W: usize>(
    scores: &[f32],
    stride: usize,
    i0: usize,
    values: &[u16],
    kv_dim: usize,
    offset: usize,
    d0: usize,
    c: usize,
    (from, to): (usize, usize),
    classes: &mut [f32],
    hd: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); W]; R];
    for (r, acc) in acc.iter_mut().enumerate() {
        let at = ((i0 + r) * LANES + c) * hd + d0;
        assert!(at + W * LANES <= classes.len());
        for (t, a) in acc.iter_mut().enumerate() {
            // SAFETY: inside `classes` (asserted).
            *a = unsafe { _mm512_loadu_ps(classes.as_ptr().add(at + t * LANES)) };
        }
    }
    let vp = values.as_ptr();
    // The first position of class c at or after `from`.
    let mut j = from + (c + LANES - from % LANES) % LANES;
    while j < to {
        // SAFETY: position j < common is cached, and d0 + 16 W <= hd.
        unsafe {
            let base = vp.add(j * kv_dim + offset + d0);
            let mut v = [_mm512_setzero_ps(); W];
            for (t, v) in v.iter_mut().enumerate() {
                *v = _mm512_cvtph_ps(_mm256_loadu_si256(base.add(t * LANES).cast()));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let p = _mm512_set1_ps(scores[(i0 + r) * stride + j]);
                for t in 0..W {
                    acc[t] = _mm512_fmadd_ps(p, v[t], acc[t]);
                }
            }
        }
        j += LANES;
    }
    for (r, acc) in acc.iter().enumerate() {
        let at = ((i0 + r) * LANES + c) * hd + d0;
        assert!(at + W * LANES <= classes.len());
        for (t, a) in acc.iter().enumerate() {
            // SAFETY: inside `classes` (asserted).
            unsafe { _mm512_storeu_ps(classes.as_mut_ptr().add(at + t * LANES), *a) };
        }
    }
}

/// Attention of `rows` consecutive rows (row `i` attends over the first
/// `n + i` positions) for the given heads, each written to its row of
/// `out`.
///
/// # Safety
/// The CPU has AVX-512F, AVX2, FMA, F16C and AVX; `head_dim` is a multiple
/// of 16; `out` points at `rows` rows of `n_head * head_dim` floats whose
/// parts for these heads are the caller's.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma,f16c,avx")]
pub(super) unsafe fn attend_rows(
    shape: Shape,
    heads: Heads,
    q: &[f32],
    rows: usize,
    keys: &[u16],
    values: &[u16],
    n: usize,
    out: *mut f32,
) {
    let Shape {
        n_head,
        n_head_kv,
        head_dim: hd,
    } = shape;
    let kv_dim = n_head_kv * hd;
    let width = n_head * hd;
    let last = n + rows - 1;
    assert!(rows > 0 && n > 0 && q.len() >= rows * width);
    assert!(keys.len() >= last * kv_dim && values.len() >= last * kv_dim);
    // The buffers are the thread's, reused: a long prompt's scores are
    // hundreds of kilobytes per tile, and fresh ones cost page faults.
    SCRATCH.with_borrow_mut(|(qs, scores, classes)| {
        qs.resize(rows * hd, 0.0);
        scores.resize(rows * last, 0.0);
        classes.resize(rows * LANES * hd, 0.0);
        // SAFETY: as this function's.
        unsafe {
            heads_of(
                shape,
                heads,
                q,
                rows,
                keys,
                values,
                n,
                out,
                &mut qs[..rows * hd],
                &mut scores[..rows * last],
                &mut classes[..rows * LANES * hd],
            )
        }
    });
}

thread_local! {
    /// Per thread: queries, scores and lane classes of a tile.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// [`attend_rows`] with its buffers.
///
/// # Safety
/// As [`attend_rows`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma,f16c,avx")]
unsafe fn heads_of(
    shape: Shape,
    heads: Heads,
    q: &[f32],
    rows: usize,
    keys: &[u16],
    values: &[u16],
    n: usize,
    out: *mut f32,
    qs: &mut [f32],
    scores: &mut [f32],
    classes: &mut [f32],
) {
    let Shape {
        n_head,
        n_head_kv,
        head_dim: hd,
    } = shape;
    let kv_dim = n_head_kv * hd;
    let width = n_head * hd;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let last = n + rows - 1;
    for h in (heads.first..n_head).step_by(heads.step) {
        let offset = (h / group) * hd;
        for i in 0..rows {
            let qh = &mut qs[i * hd..(i + 1) * hd];
            qh.copy_from_slice(&q[i * width + h * hd..][..hd]);
            // SAFETY: the CPU has F16C and AVX (the contract).
            unsafe { round_f16(qh) };
        }

        // Scores: blocks of positions (their keys stay in L1) met by every
        // group of rows in turn.
        let groups: Vec<(usize, usize)> = (0..rows)
            .step_by(SCORE_ROWS)
            .map(|i0| (i0, SCORE_ROWS.min(rows - i0)))
            .collect();
        for b in (0..last).step_by(KEY_BLOCK) {
            for &(i0, r) in &groups {
                let full = (n + i0) / 8 * 8;
                for j in (b..full.min(b + KEY_BLOCK)).step_by(8) {
                    // SAFETY: positions below n + i0 are cached and every
                    // row of the group attends over them; rows hold `last`
                    // scores.
                    unsafe {
                        match r {
                            3 => score_block::<3>(
                                qs, hd, i0, keys, kv_dim, offset, j, scale, scores, last,
                            ),
                            2 => score_block::<2>(
                                qs, hd, i0, keys, kv_dim, offset, j, scale, scores, last,
                            ),
                            _ => score_block::<1>(
                                qs, hd, i0, keys, kv_dim, offset, j, scale, scores, last,
                            ),
                        }
                    }
                }
            }
        }
        for &(i0, r) in &groups {
            let full = (n + i0) / 8 * 8;
            // Each row's positions past the group's: blocks of eight, then
            // one by one, as the AVX2 kernel does them.
            for i in i0..i0 + r {
                let len = n + i;
                let qh = &qs[i * hd..(i + 1) * hd];
                let mut j = full;
                while j + 8 <= len {
                    // SAFETY: positions below len are cached; row i's
                    // scores hold `last` values.
                    unsafe {
                        scores8(
                            qh,
                            keys,
                            kv_dim,
                            offset,
                            j,
                            scale,
                            &mut scores[i * last..(i + 1) * last],
                        )
                    };
                    j += 8;
                }
                for jj in j..len {
                    // SAFETY: position jj is cached; hd is a multiple of 16.
                    let (lo, hi) = unsafe { dot16(qh, &keys[jj * kv_dim + offset..][..hd]) };
                    scores[i * last + jj] = tree16(lo, hi) * scale;
                }
            }
        }
        for i in 0..rows {
            softmax_f16(&mut scores[i * last..i * last + n + i]);
        }

        // Weighted sums: blocks of positions met by every group of rows in
        // turn; each class's chain goes on from where the last block left
        // it, so its positions still come in order.
        classes.fill(0.0);
        let groups: Vec<(usize, usize)> = (0..rows)
            .step_by(SUM_ROWS)
            .map(|i0| (i0, SUM_ROWS.min(rows - i0)))
            .collect();
        for b in (0..last).step_by(VALUE_BLOCK) {
            for &(i0, r) in &groups {
                let span = (b, (n + i0).min(b + VALUE_BLOCK));
                if span.0 >= span.1 {
                    continue;
                }
                // Blocks of four registers of the dimension, then single
                // registers for what is left.
                let wide = hd / DIM_BLOCK * DIM_BLOCK;
                for (d0, four) in (0..wide)
                    .step_by(DIM_BLOCK)
                    .map(|d| (d, true))
                    .chain((wide..hd).step_by(LANES).map(|d| (d, false)))
                {
                    for c in 0..LANES {
                        // SAFETY: positions below n + i0 are cached and
                        // attended to by every row of the group.
                        unsafe {
                            macro_rules! sum {
                                ($r:literal) => {
                                    if four {
                                        sum_block::<$r, 4>(
                                            scores, last, i0, values, kv_dim, offset, d0, c, span,
                                            classes, hd,
                                        )
                                    } else {
                                        sum_block::<$r, 1>(
                                            scores, last, i0, values, kv_dim, offset, d0, c, span,
                                            classes, hd,
                                        )
                                    }
                                };
                            }
                            match r {
                                4 => sum!(4),
                                3 => sum!(3),
                                2 => sum!(2),
                                _ => sum!(1),
                            }
                        }
                    }
                }
            }
        }
        // Each row's positions past its group's continue its chains, in
        // order.
        for &(i0, r) in &groups {
            for i in i0..i0 + r {
                for jj in n + i0..n + i {
                    let p = scores[i * last + jj];
                    let vj = &values[jj * kv_dim + offset..][..hd];
                    let acc = &mut classes[(i * LANES + jj % LANES) * hd..][..hd];
                    // SAFETY: both hold `hd` floats, a multiple of 8.
                    unsafe { axpy(acc, p, vj) };
                }
            }
        }
        for i in 0..rows {
            let c = &mut classes[i * LANES * hd..(i + 1) * LANES * hd];
            reduce_classes(c, hd);
            // SAFETY: the caller owns these heads' parts of the rows.
            unsafe { head_out(out.add(i * width), h, hd) }.copy_from_slice(&c[..hd]);
        }
    }
}
