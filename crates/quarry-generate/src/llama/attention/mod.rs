//! One token's attention over the cache, every head, with llama.cpp's
//! summation order: query and attention weights rounded to f16, dot
//! products and weighted sums accumulated in 16 lanes (position `j` of the
//! weighted sum in lane `j % 16`) with fused multiply-adds and reduced
//! pairwise, softmax sums in f64.
//!
//! The AVX2+FMA version vectorises over the head dimension and gives the
//! same bits as the portable one (both round each multiply-add once).

use super::quant::f16_round as f16r;
use super::vexp::tree_sum;

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

/// Appends `xs` rounded to the nearest f16 (ties to even), as f16 bits: the
/// cache's form (half the bytes of f32, the same values after conversion,
/// which is exact). 8 at a time with F16C where the CPU has it.
pub(super) fn push_f16(xs: &[f32], out: &mut Vec<u16>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx")
        {
            // SAFETY: the CPU has F16C and AVX (checked above).
            unsafe { x86::push_f16(xs, out) };
            return;
        }
    }
    out.extend(xs.iter().map(|x| half::f16::from_f32(*x).to_bits()));
}

/// An f16's value.
fn f32_of(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// a * b + c rounded once (the product of two f32 is exact in f64).
fn fma(a: f32, b: f32, c: f32) -> f32 {
    (a as f64 * b as f64 + c as f64) as f32
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

/// Whether this CPU runs the AVX-512 kernel (checked once).
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    })
}

/// Queries a tile holds: the keys and values of a block of positions are
/// read once for this many prompt rows instead of once per row.
pub(super) const TILE: usize = 16;

/// Attention of `rows` consecutive rows of one sequence (row `i` at
/// `q[i * n_head * head_dim..]`, attending over the first `n + i` cached
/// positions of `keys` and `values`, position-major, `n_head_kv *
/// head_dim` each), for the given heads, each written to its part of its
/// row of `out` (rows of `n_head * head_dim`; calls for other heads may
/// write the other parts concurrently). One decoding row is `rows = 1`;
/// a prompt's rows go as tiles, whose kernels turn the loops so that each
/// key and value meets the whole tile while it is in cache. Every score,
/// softmax and weighted sum is computed in the same order in every
/// kernel, so each row gets the bits of [`attend_portable`].
#[allow(clippy::too_many_arguments)]
pub(super) fn attend_rows(
    shape: Shape,
    heads: Heads,
    q: &[f32],
    rows: usize,
    keys: &[u16],
    values: &[u16],
    n: usize,
    out: *mut f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if shape.head_dim.is_multiple_of(LANES) && has_avx512() {
            // SAFETY: the CPU has the features (checked above); `out`
            // points at the caller's rows, of which these heads' parts are
            // ours.
            unsafe { avx512::attend_rows(shape, heads, q, rows, keys, values, n, out) };
            return;
        }
        if shape.head_dim.is_multiple_of(LANES)
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked above);
            // `out` as above.
            unsafe { x86::attend_rows(shape, heads, q, rows, keys, values, n, out) };
            return;
        }
    }
    let width = shape.n_head * shape.head_dim;
    for i in 0..rows {
        attend_portable(
            shape,
            heads,
            &q[i * width..(i + 1) * width],
            keys,
            values,
            n + i,
            // SAFETY: row i of the caller's rows.
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
                    acc[l] = fma(qc[l], f32_of(kc[l]), acc[l]);
                }
            }
            *score = tree_sum(acc) * scale;
        }
        softmax_f16(&mut scores);
        lanes.iter_mut().for_each(|l| *l = [0f32; LANES]);
        for (j, p) in scores.iter().enumerate() {
            let vj = &values[j * kv_dim + kvh * hd..][..hd];
            for (acc, v) in lanes.iter_mut().zip(vj) {
                acc[j % LANES] = fma(*p, f32_of(*v), acc[j % LANES]);
            }
        }
        // SAFETY: `attend`'s caller owns head h's part of the row.
        let out = unsafe { head_out(out, h, hd) };
        for (o, acc) in out.iter_mut().zip(&lanes) {
            *o = tree_sum(*acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
use avx2 as x86;

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(x: f32) -> u16 {
        half::f16::from_f32(x).to_bits()
    }

    #[test]
    fn cached_f16_values_are_the_rounded_values() {
        let xs: Vec<f32> = (0..1003)
            .map(|i| (i as f32 - 500.0) * 0.013_7 + 1e-7)
            .chain([65504.0, 70000.0, -1e-8, 0.0, 1.000_244_1])
            .collect();
        let mut cached = vec![7u16];
        push_f16(&xs, &mut cached);
        assert_eq!(cached.len(), xs.len() + 1);
        let mut rounded = xs.clone();
        round_f16(&mut rounded);
        for (c, r) in cached[1..].iter().zip(&rounded) {
            assert_eq!(f32_of(*c).to_bits(), r.to_bits());
        }
    }

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
        for (n, rows) in [
            (1, 1),
            (1, 8),
            (5, 3),
            (9, 8),
            (30, 7),
            (64, 8),
            (100, 5),
            (37, 11),
            (200, 16),
        ] {
            let last = n + rows - 1;
            let q: Vec<f32> = (0..rows * width).map(|i| val(i, 7)).collect();
            let keys: Vec<u16> = (0..last * kv_dim).map(|i| bits(val(i, 13))).collect();
            let values: Vec<u16> = (0..last * kv_dim).map(|i| bits(val(i, 31))).collect();
            let mut tiled = vec![0f32; rows * width];
            attend_rows(
                shape,
                Heads::ALL,
                &q,
                rows,
                &keys,
                &values,
                n,
                tiled.as_mut_ptr(),
            );
            for i in 0..rows {
                let mut one = vec![0f32; width];
                let row = &q[i * width..(i + 1) * width];
                attend_portable(
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
            let keys: Vec<u16> = (0..n * kv_dim).map(|i| bits(val(i, 13))).collect();
            let values: Vec<u16> = (0..n * kv_dim).map(|i| bits(val(i, 31))).collect();
            let (mut a, mut b) = (vec![0f32; 6 * 32], vec![0f32; 6 * 32]);
            attend_rows(shape, Heads::ALL, &q, 1, &keys, &values, n, a.as_mut_ptr());
            attend_portable(shape, Heads::ALL, &q, &keys, &values, n, b.as_mut_ptr());
            // Heads split in two calls give the same row.
            let mut c = vec![0f32; 6 * 32];
            for first in 0..2 {
                let heads = Heads { first, step: 2 };
                attend_rows(shape, heads, &q, 1, &keys, &values, n, c.as_mut_ptr());
            }
            assert_eq!(a, c, "n = {n}");
            assert_eq!(a, b, "n = {n}");
            if n == 1 {
                // One position: the output is its value (weight 1).
                assert_eq!(
                    a[..32].to_vec(),
                    values[..32].iter().map(|b| f32_of(*b)).collect::<Vec<_>>()
                );
            }
        }
    }
}
