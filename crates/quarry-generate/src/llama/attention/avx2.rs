//! The AVX2 + FMA kernels of [`super`]: the same operations in the same
//! order as the portable ones, eight lanes at a time.

use std::arch::x86_64::*;

use super::{f16r, head_out, softmax_f16, Heads, Shape, LANES};

/// # Safety
/// The CPU must have F16C and AVX.
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn push_f16(xs: &[f32], out: &mut Vec<u16>) {
    out.reserve(xs.len());
    let mut chunks = xs.chunks_exact(8);
    for c in chunks.by_ref() {
        let mut h = [0u16; 8];
        // SAFETY: `c` holds 8 floats and `h` 8 halves.
        unsafe {
            let v = _mm256_loadu_ps(c.as_ptr());
            let p = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(h.as_mut_ptr().cast(), p);
        }
        out.extend_from_slice(&h);
    }
    out.extend(
        chunks
            .remainder()
            .iter()
            .map(|x| half::f16::from_f32(*x).to_bits()),
    );
}

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
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot16(q: &[f32], k: &[u16]) -> (__m256, __m256) {
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for c in (0..q.len()).step_by(LANES) {
        // SAFETY: c + 16 <= len for both (see the contract).
        unsafe {
            lo = _mm256_fmadd_ps(
                _mm256_loadu_ps(q.as_ptr().add(c)),
                _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(c).cast())),
                lo,
            );
            hi = _mm256_fmadd_ps(
                _mm256_loadu_ps(q.as_ptr().add(c + 8)),
                _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(c + 8).cast())),
                hi,
            );
        }
    }
    (lo, hi)
}

/// Rows to columns: `out[i][p] = rows[p][i]`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tree16(lo: __m256, hi: __m256) -> f32 {
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
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scores8(
    qh: &[f32],
    keys: &[u16],
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
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn axpy(acc: &mut [f32], p: f32, v: &[u16]) {
    let pv = _mm256_set1_ps(p);
    for d in (0..acc.len()).step_by(8) {
        // SAFETY: d + 8 <= len for both (see the contract).
        unsafe {
            let a = _mm256_loadu_ps(acc.as_ptr().add(d));
            let x = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(d).cast()));
            _mm256_storeu_ps(acc.as_mut_ptr().add(d), _mm256_fmadd_ps(pv, x, a));
        }
    }
}

/// Adds the 16 lane classes pairwise (vectorised over the dimension)
/// into the first.
pub(super) fn reduce_classes(classes: &mut [f32], hd: usize) {
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
/// As `super::attend_rows`'s `out`; the CPU has AVX2, FMA and F16C.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
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
    let group = n_head / n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let last = n + rows - 1;
    assert!(rows > 0 && q.len() >= rows * width);
    assert!(keys.len() >= last * kv_dim && values.len() >= last * kv_dim);
    // Per row: its query (rounded), scores and 16 lane classes.
    let mut qs = vec![0f32; rows * hd];
    let mut scores = vec![0f32; rows * last];
    let mut classes = vec![0f32; rows * LANES * hd];
    for h in (heads.first..n_head).step_by(heads.step) {
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
