//! One token's attention over the cache, every head, with llama.cpp's
//! summation order: query and attention weights rounded to f16, dot
//! products and weighted sums accumulated in 16 lanes (position `j` of the
//! weighted sum in lane `j % 16`) with fused multiply-adds and reduced
//! pairwise, softmax sums in f64.
//!
//! The AVX2+FMA version vectorises over the head dimension and gives the
//! same bits as the portable one (both round each multiply-add once).

use super::quant::f16_round as f16r;

/// Lanes of the sums (an AVX-512 register of f32 in ggml's kernels).
const LANES: usize = 16;

/// Shapes the kernel needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

/// Rounds every value to the nearest f16 (ties to even), kept as f32: 8 at
/// a time with F16C where the CPU has it.
pub(super) fn round_f16(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx")
        {
            // SAFETY: the CPU has F16C and AVX (checked above).
            unsafe { x86::round_f16(xs) };
            return;
        }
    }
    xs.iter_mut().for_each(|x| *x = f16r(*x));
}

/// a * b + c rounded once (the product of two f32 is exact in f64).
fn fma(a: f32, b: f32, c: f32) -> f32 {
    (a as f64 * b as f64 + c as f64) as f32
}

/// Adds the upper half of `v` onto the lower half until one value is left.
fn tree_sum(v: &mut [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            v[i] += v[i + width];
        }
        width /= 2;
    }
    v[0]
}

/// Softmax of `scores` in place (ggml's exp and sum, [`super::vexp`]),
/// then rounded to f16 as ggml
/// converts them for the product with f16 values.
fn softmax_f16(scores: &mut [f32]) {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, s| m.max(*s));
    let sum = super::vexp::softmax_exp(scores, max);
    let inv = (1.0 / sum) as f32;
    for s in scores.iter_mut() {
        *s *= inv;
    }
    round_f16(scores);
}

/// Which heads a call computes: `first`, `first + step`, ...
#[derive(Debug, Clone, Copy)]
pub(super) struct Heads {
    pub first: usize,
    pub step: usize,
}

impl Heads {
    /// Every head.
    pub(super) const ALL: Heads = Heads { first: 0, step: 1 };
}

/// Attention of query `q` over the first `n` cached positions of `keys`
/// and `values` (position-major, `n_head_kv * head_dim` each), for the
/// given heads, written to their parts of `out` (the whole row's pointer:
/// calls for other heads may write the other parts concurrently).
pub(super) fn attend(
    shape: Shape,
    heads: Heads,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n: usize,
    out: *mut f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if shape.head_dim.is_multiple_of(LANES)
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked above); `out` is
            // the caller's row, of which these heads' parts are ours.
            unsafe { x86::attend(shape, heads, q, keys, values, n, out) };
            return;
        }
    }
    attend_portable(shape, heads, q, keys, values, n, out);
}

/// Queries a tile holds: the keys and values of a block of positions are
/// read once for this many prompt rows instead of once per row.
pub(super) const TILE: usize = 8;

/// Attention of `rows` consecutive prompt rows of one sequence (row `i`
/// at `q[i * n_head * head_dim..]`, attending over the first `n + i`
/// cached positions), every head, each written to its row of `out`
/// (rows of `n_head * head_dim`). The same bits as [`attend`] row by row:
/// every score, softmax and weighted sum is computed in the same order;
/// only the loops are turned so that each key and value meets the whole
/// tile while it is in cache.
pub(super) fn attend_tile(
    shape: Shape,
    q: &[f32],
    rows: usize,
    keys: &[f32],
    values: &[f32],
    n: usize,
    out: *mut f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if shape.head_dim.is_multiple_of(LANES)
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked above); `out`
            // points at the tile's rows, which are the caller's.
            unsafe { x86::attend_tile(shape, q, rows, keys, values, n, out) };
            return;
        }
    }
    let width = shape.n_head * shape.head_dim;
    for i in 0..rows {
        attend_portable(
            shape,
            Heads::ALL,
            &q[i * width..(i + 1) * width],
            keys,
            values,
            n + i,
            // SAFETY: row i of the caller's tile.
            unsafe { out.add(i * width) },
        );
    }
}

/// The part of `out` that head `h` owns.
///
/// # Safety
/// `out` points at a row of `n_head * head_dim` floats that outlives the
/// returned slice, and no one else writes head `h`'s part meanwhile.
unsafe fn head_out<'a>(out: *mut f32, h: usize, hd: usize) -> &'a mut [f32] {
    // SAFETY: per the contract above.
    unsafe { std::slice::from_raw_parts_mut(out.add(h * hd), hd) }
}

fn attend_portable(
    shape: Shape,
    heads: Heads,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n: usize,
    out: *mut f32,
) {
    let Shape {
        n_head,
        n_head_kv,
        head_dim: hd,
    } = shape;
    let kv_dim = n_head_kv * hd;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0f32; n];
    let mut lanes = vec![[0f32; LANES]; hd];
    for h in (heads.first..n_head).step_by(heads.step) {
        let kvh = h / group;
        let mut qh = q[h * hd..(h + 1) * hd].to_vec();
        round_f16(&mut qh);
        for (j, score) in scores.iter_mut().enumerate() {
            let kj = &keys[j * kv_dim + kvh * hd..][..hd];
            let mut acc = [0f32; LANES];
            for (qc, kc) in qh.chunks(LANES).zip(kj.chunks(LANES)) {
                for l in 0..qc.len() {
                    acc[l] = fma(qc[l], kc[l], acc[l]);
                }
            }
            *score = tree_sum(&mut acc) * scale;
        }
        softmax_f16(&mut scores);
        lanes.iter_mut().for_each(|l| *l = [0f32; LANES]);
        for (j, p) in scores.iter().enumerate() {
            let vj = &values[j * kv_dim + kvh * hd..][..hd];
            for (acc, v) in lanes.iter_mut().zip(vj) {
                acc[j % LANES] = fma(*p, *v, acc[j % LANES]);
            }
        }
        // SAFETY: `attend`'s caller owns head h's part of the row.
        let out = unsafe { head_out(out, h, hd) };
        for (o, acc) in out.iter_mut().zip(lanes.iter_mut()) {
            *o = tree_sum(acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{f16r, head_out, softmax_f16, Heads, Shape, LANES};

    /// # Safety
    /// The CPU must have F16C and AVX.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn round_f16(xs: &mut [f32]) {
        let mut chunks = xs.chunks_exact_mut(8);
        for c in chunks.by_ref() {
            // SAFETY: `c` holds 8 floats.
            unsafe {
                let v = _mm256_loadu_ps(c.as_ptr());
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        for x in chunks.into_remainder() {
            *x = f16r(*x);
        }
    }

    /// The 16-lane pairwise reduction of two 8-lane halves.
    /// The 16-lane partial sums of q·k, as two 8-lane halves.
    ///
    /// # Safety
    /// `q` and `k` hold the same multiple of 16 floats.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot16(q: &[f32], k: &[f32]) -> (__m256, __m256) {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for c in (0..q.len()).step_by(LANES) {
            // SAFETY: c + 16 <= len for both (see the contract).
            unsafe {
                lo = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.as_ptr().add(c)),
                    _mm256_loadu_ps(k.as_ptr().add(c)),
                    lo,
                );
                hi = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.as_ptr().add(c + 8)),
                    _mm256_loadu_ps(k.as_ptr().add(c + 8)),
                    hi,
                );
            }
        }
        (lo, hi)
    }

    /// Rows to columns: `out[i][p] = rows[p][i]`.
    #[target_feature(enable = "avx2,fma")]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    #[target_feature(enable = "avx2,fma")]
    fn tree16(lo: __m256, hi: __m256) -> f32 {
        let s8 = _mm256_add_ps(lo, hi);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        _mm_cvtss_f32(s1)
    }

    /// Scores of `qh` against positions `j..j + 8`, scaled, into
    /// `scores[j..j + 8]`: the 16-lane sums of the eight positions are
    /// transposed so that the pairwise reduction runs on all eight at once
    /// (the same additions per position as `tree16`).
    ///
    /// # Safety
    /// `keys` holds positions up to `j + 8` and `scores` at least `j + 8`
    /// values; `qh` holds `hd` floats, a multiple of 16.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scores8(
        qh: &[f32],
        keys: &[f32],
        kv_dim: usize,
        offset: usize,
        j: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let hd = qh.len();
        let mut s8 = [_mm256_setzero_ps(); 8];
        for (p, s) in s8.iter_mut().enumerate() {
            // SAFETY: per the contract.
            let (lo, hi) = unsafe { dot16(qh, &keys[(j + p) * kv_dim + offset..][..hd]) };
            *s = _mm256_add_ps(lo, hi);
        }
        let t = transpose8(s8);
        let s4 = [0, 1, 2, 3].map(|i| _mm256_add_ps(t[i], t[i + 4]));
        let s2 = [_mm256_add_ps(s4[0], s4[2]), _mm256_add_ps(s4[1], s4[3])];
        let s1 = _mm256_mul_ps(_mm256_add_ps(s2[0], s2[1]), _mm256_set1_ps(scale));
        assert!(scores.len() >= j + 8);
        // SAFETY: positions j..j+8 are inside `scores` (asserted).
        unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(j), s1) };
    }

    /// `acc[d] += p * v[d]` with fused multiply-adds.
    ///
    /// # Safety
    /// `acc` and `v` hold the same multiple of 8 floats.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
        let pv = _mm256_set1_ps(p);
        for d in (0..acc.len()).step_by(8) {
            // SAFETY: d + 8 <= len for both (see the contract).
            unsafe {
                let a = _mm256_loadu_ps(acc.as_ptr().add(d));
                let x = _mm256_loadu_ps(v.as_ptr().add(d));
                _mm256_storeu_ps(acc.as_mut_ptr().add(d), _mm256_fmadd_ps(pv, x, a));
            }
        }
    }

    /// Adds the 16 lane classes pairwise (vectorised over the dimension)
    /// into the first.
    fn reduce_classes(classes: &mut [f32], hd: usize) {
        let mut width = LANES / 2;
        while width > 0 {
            for i in 0..width {
                let (dst, src) = classes.split_at_mut((i + width) * hd);
                for (a, b) in dst[i * hd..(i + 1) * hd].iter_mut().zip(&src[..hd]) {
                    *a += *b;
                }
            }
            width /= 2;
        }
    }

    /// # Safety
    /// As `super::attend_tile`'s `out`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attend_tile(
        shape: Shape,
        q: &[f32],
        rows: usize,
        keys: &[f32],
        values: &[f32],
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
        let group = n_head / n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        let last = n + rows - 1;
        assert!(rows > 0 && q.len() >= rows * width);
        assert!(keys.len() >= last * kv_dim && values.len() >= last * kv_dim);
        // Per row: its query (rounded), scores and 16 lane classes.
        let mut qs = vec![0f32; rows * hd];
        let mut scores = vec![0f32; rows * last];
        let mut classes = vec![0f32; rows * LANES * hd];
        for h in 0..n_head {
            let kvh = h / group;
            let offset = kvh * hd;
            for i in 0..rows {
                let qh = &mut qs[i * hd..(i + 1) * hd];
                qh.copy_from_slice(&q[i * width + h * hd..][..hd]);
                super::round_f16(qh);
            }
            // Scores: blocks of eight positions, each block's keys meeting
            // every row that attends over all eight while they are in L1;
            // a row's last positions (past its last full block) one by one.
            let mut j = 0;
            while j + 8 <= last {
                for i in 0..rows {
                    let len = n + i;
                    if j + 8 > len {
                        continue;
                    }
                    // SAFETY: positions j..j+8 < len <= last are cached,
                    // and row i's scores hold `last` values.
                    unsafe {
                        scores8(
                            &qs[i * hd..(i + 1) * hd],
                            keys,
                            kv_dim,
                            offset,
                            j,
                            scale,
                            &mut scores[i * last..(i + 1) * last],
                        )
                    };
                }
                j += 8;
            }
            for i in 0..rows {
                let len = n + i;
                let qh = &qs[i * hd..(i + 1) * hd];
                let row = &mut scores[i * last..i * last + len];
                for (jj, score) in row.iter_mut().enumerate().skip(len / 8 * 8) {
                    // SAFETY: position jj < len is cached; hd is a multiple
                    // of 16.
                    let (lo, hi) = unsafe { dot16(qh, &keys[jj * kv_dim + offset..][..hd]) };
                    *score = tree16(lo, hi) * scale;
                }
                softmax_f16(row);
            }
            // Weighted sums: each value meets every row that attends to it.
            classes.fill(0.0);
            for jj in 0..last {
                let vj = &values[jj * kv_dim + offset..][..hd];
                let first = (jj + 1).saturating_sub(n);
                for i in first..rows {
                    let p = scores[i * last + jj];
                    let acc = &mut classes[(i * LANES + jj % LANES) * hd..][..hd];
                    // SAFETY: both hold `hd` floats, a multiple of 8.
                    unsafe { axpy(acc, p, vj) };
                }
            }
            for i in 0..rows {
                let c = &mut classes[i * LANES * hd..(i + 1) * LANES * hd];
                reduce_classes(c, hd);
                // SAFETY: the caller owns the tile's rows.
                unsafe { head_out(out.add(i * width), h, hd) }.copy_from_slice(&c[..hd]);
            }
        }
    }

    /// # Safety
    /// As `super::attend`'s `out`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attend(
        shape: Shape,
        heads: Heads,
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        n: usize,
        out: *mut f32,
    ) {
        let Shape {
            n_head,
            n_head_kv,
            head_dim: hd,
        } = shape;
        let kv_dim = n_head_kv * hd;
        let group = n_head / n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut scores = vec![0f32; n];
        // Lane class L (positions j with j % 16 == L) keeps a running
        // weighted sum over the head dimension.
        let mut classes = vec![0f32; LANES * hd];
        let mut qh = vec![0f32; hd];
        assert!(keys.len() >= n * kv_dim && values.len() >= n * kv_dim);
        assert!(q.len() >= n_head * hd);
        for h in (heads.first..n_head).step_by(heads.step) {
            let kvh = h / group;
            qh.copy_from_slice(&q[h * hd..(h + 1) * hd]);
            super::round_f16(&mut qh);
            // Eight positions at a time: their 16-lane sums are transposed
            // so that the pairwise reduction runs on all eight at once
            // (the same additions per position as `tree16`).
            let mut j = 0;
            while j + 8 <= n {
                let mut s8 = [_mm256_setzero_ps(); 8];
                for (p, s) in s8.iter_mut().enumerate() {
                    // SAFETY: as below.
                    let (lo, hi) =
                        unsafe { dot16(&qh, &keys[(j + p) * kv_dim + kvh * hd..][..hd]) };
                    *s = _mm256_add_ps(lo, hi);
                }
                let t = transpose8(s8);
                let s4 = [0, 1, 2, 3].map(|i| _mm256_add_ps(t[i], t[i + 4]));
                let s2 = [_mm256_add_ps(s4[0], s4[2]), _mm256_add_ps(s4[1], s4[3])];
                let s1 = _mm256_mul_ps(_mm256_add_ps(s2[0], s2[1]), _mm256_set1_ps(scale));
                // SAFETY: positions j..j+8 are below n = scores.len().
                unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(j), s1) };
                j += 8;
            }
            for (j, score) in scores.iter_mut().enumerate().skip(j) {
                // SAFETY: as below.
                let (lo, hi) = unsafe { dot16(&qh, &keys[j * kv_dim + kvh * hd..][..hd]) };
                *score = tree16(lo, hi) * scale;
            }
            softmax_f16(&mut scores);
            classes.fill(0.0);
            for (j, p) in scores.iter().enumerate() {
                let vj = &values[j * kv_dim + kvh * hd..][..hd];
                let acc = &mut classes[(j % LANES) * hd..][..hd];
                let pv = _mm256_set1_ps(*p);
                // SAFETY: `vj` and `acc` hold `hd` floats, a multiple of 8.
                unsafe {
                    for d in (0..hd).step_by(8) {
                        let a = _mm256_loadu_ps(acc.as_ptr().add(d));
                        let v = _mm256_loadu_ps(vj.as_ptr().add(d));
                        _mm256_storeu_ps(acc.as_mut_ptr().add(d), _mm256_fmadd_ps(pv, v, a));
                    }
                }
            }
            // Pairwise over the 16 classes, vectorised over the dimension.
            let mut width = LANES / 2;
            while width > 0 {
                for i in 0..width {
                    let (dst, src) = classes.split_at_mut((i + width) * hd);
                    for (a, b) in dst[i * hd..(i + 1) * hd].iter_mut().zip(&src[..hd]) {
                        *a += *b;
                    }
                }
                width /= 2;
            }
            // SAFETY: the caller owns head h's part of the row.
            unsafe { head_out(out, h, hd) }.copy_from_slice(&classes[..hd]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_f16_rounding_equals_scalar() {
        let mut xs: Vec<f32> = (0..1000)
            .map(|i| (i as f32 - 500.0) * 0.001_234_5 + 1e-7)
            .collect();
        xs.extend([65504.0, 70000.0, -1e-8, 0.0, 1.000_244_1, 1.000_732_4]);
        let want: Vec<f32> = xs.iter().map(|x| f16r(*x)).collect();
        round_f16(&mut xs);
        assert_eq!(xs, want);
    }

    #[test]
    fn a_tile_gives_each_row_the_bits_of_its_own_call() {
        let shape = Shape {
            n_head: 6,
            n_head_kv: 2,
            head_dim: 32,
        };
        let (width, kv_dim) = (6 * 32, 64);
        let val = |i: usize, m: usize| ((i * m) % 89) as f32 / 45.0 - 1.0;
        for (n, rows) in [(1, 1), (1, 8), (5, 3), (9, 8), (30, 7), (64, 8), (100, 5)] {
            let last = n + rows - 1;
            let q: Vec<f32> = (0..rows * width).map(|i| val(i, 7)).collect();
            let keys: Vec<f32> = (0..last * kv_dim).map(|i| f16r(val(i, 13))).collect();
            let values: Vec<f32> = (0..last * kv_dim).map(|i| f16r(val(i, 31))).collect();
            let mut tiled = vec![0f32; rows * width];
            attend_tile(shape, &q, rows, &keys, &values, n, tiled.as_mut_ptr());
            for i in 0..rows {
                let mut one = vec![0f32; width];
                let row = &q[i * width..(i + 1) * width];
                attend(
                    shape,
                    Heads::ALL,
                    row,
                    &keys,
                    &values,
                    n + i,
                    one.as_mut_ptr(),
                );
                let same = one
                    .iter()
                    .zip(&tiled[i * width..(i + 1) * width])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "n = {n}, rows = {rows}, row {i}");
            }
        }
    }

    #[test]
    fn the_vector_kernel_gives_the_portable_bits() {
        let shape = Shape {
            n_head: 6,
            n_head_kv: 2,
            head_dim: 32,
        };
        let kv_dim = 64;
        for n in [1, 2, 8, 17, 40, 67] {
            let val = |i: usize, m: usize| ((i * m) % 97) as f32 / 50.0 - 1.0;
            let q: Vec<f32> = (0..6 * 32).map(|i| val(i, 7)).collect();
            let keys: Vec<f32> = (0..n * kv_dim).map(|i| f16r(val(i, 13))).collect();
            let values: Vec<f32> = (0..n * kv_dim).map(|i| f16r(val(i, 31))).collect();
            let (mut a, mut b) = (vec![0f32; 6 * 32], vec![0f32; 6 * 32]);
            attend(shape, Heads::ALL, &q, &keys, &values, n, a.as_mut_ptr());
            attend_portable(shape, Heads::ALL, &q, &keys, &values, n, b.as_mut_ptr());
            // Heads split in two calls give the same row.
            let mut c = vec![0f32; 6 * 32];
            for first in 0..2 {
                let heads = Heads { first, step: 2 };
                attend(shape, heads, &q, &keys, &values, n, c.as_mut_ptr());
            }
            assert_eq!(a, c, "n = {n}");
            assert_eq!(a, b, "n = {n}");
            if n == 1 {
                // One position: the output is its value (weight 1).
                assert_eq!(&a[..32], &values[..32]);
            }
        }
    }
}
