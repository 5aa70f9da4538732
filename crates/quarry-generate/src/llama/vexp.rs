//! The exponential of ggml's AVX-512 kernels, for the softmax and SiLU.
//!
//! ggml does not call the C library's `expf` there: it evaluates a short
//! polynomial (after ARM's optimized-routines expf: n = round(x / ln 2),
//! a degree-5 polynomial of the remainder, then scaling by 2^n), which
//! differs from `expf` in the last bits for about half of all inputs.
//! Those bits decide int8 roundings in the next quantized product, and so
//! near-ties in greedy decoding. This module evaluates the same
//! operations in the same order everywhere, so that every CPU gets the
//! bits of the AVX-512 kernel: with AVX-512 where the CPU has it (as
//! llama.cpp built for the host does), with AVX2 and FMA eight lanes at a
//! time otherwise (AVX-512's `scalef` done as two exact multiplications by
//! powers of two, so the result is rounded once, as `scalef` rounds it),
//! and one value at a time with `f32::mul_add` elsewhere. (Before, CPUs
//! without AVX-512 used `expf`, and greedy answers there drifted from the
//! AVX-512 ones at the first near-tie.)
//!
//! The softmax sum follows ggml's too: the exponentials of each 16 scores
//! are summed in f32 (upper half onto lower half) and the partial sums in
//! f64. Scores past the last position count as zero, as ggml's masked
//! cache cells do.

/// Lanes of an AVX-512 register of f32.
const LANES: usize = 16;

// The routine's constants, by bit pattern (Rust has no hex float literals).
const SHIFT: u32 = 0x4b40_0000; // 0x1.8p23: rounds to an integer when added
const INV_LN2: u32 = 0x3fb8_aa3b; // 0x1.715476p+0
const LN2_HI: u32 = 0x3f31_7200; // 0x1.62e4p-1
const LN2_LO: u32 = 0x35bf_be8e; // 0x1.7f7d1cp-20
const C5: u32 = 0x3c07_2010; // 0x1.0e4020p-7
const C4: u32 = 0x3d2b_9f17; // 0x1.573e2ep-5
const C3: u32 = 0x3e2a_af33; // 0x1.555e66p-3
const C2: u32 = 0x3eff_fedb; // 0x1.fffdb6p-2
const C1: u32 = 0x3f7f_fff6; // 0x1.ffffecp-1

/// Whether this CPU runs the AVX-512 routine (checked once).
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Adds the upper half of `v` onto the lower half until one value is left
/// (the order of `_mm512_reduce_add_ps`; the portable attention sums in it
/// too).
pub(super) fn tree_sum(mut v: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            v[i] += v[i + width];
        }
        width /= 2;
    }
    v[0]
}

/// Replaces each score by exp(score - max); returns their sum.
pub(super) fn softmax_exp(scores: &mut [f32], max: f32) -> f64 {
    let mut sum = 0f64;
    for chunk in scores.chunks_mut(LANES) {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        lanes[..chunk.len()].copy_from_slice(chunk);
        for l in lanes.iter_mut() {
            *l -= max;
        }
        exp16(&mut lanes);
        chunk.copy_from_slice(&lanes[..chunk.len()]);
        sum += tree_sum(lanes) as f64;
    }
    sum
}

/// `gate[i] = silu(gate[i]) * up[i]`, silu(x) = x / (1 + exp(-x)).
pub(super) fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.chunks_mut(LANES).zip(up.chunks(LANES)) {
        let mut e = [0f32; LANES];
        for (e, x) in e.iter_mut().zip(g.iter()) {
            *e = -x;
        }
        exp16(&mut e);
        for ((x, e), u) in g.iter_mut().zip(&e).zip(u) {
            *x = *x / (1.0 + e) * u;
        }
    }
}

/// Whether this CPU runs the AVX2 routine (checked once).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// exp of 16 values in place.
fn exp16(v: &mut [f32; LANES]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has AVX-512F and DQ (checked above).
            unsafe { x86::exp16(v) };
            return;
        }
        if has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { x86::exp16_avx2(v) };
            return;
        }
    }
    for x in v.iter_mut() {
        *x = exp_scalar(*x);
    }
}

/// The routine on one value: the same operations as the vector kernels,
/// each fused multiply-add rounded once (`mul_add`).
fn exp_scalar(x: f32) -> f32 {
    let c = f32::from_bits;
    let r = c(SHIFT);
    let z = x.mul_add(c(INV_LN2), r);
    let n = z - r;
    let b = (-n).mul_add(c(LN2_LO), (-n).mul_add(c(LN2_HI), x));
    // NaN is not huge (and stays NaN), as in the vector compares.
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = c(C5)
        .mul_add(b, c(C4))
        .mul_add(u, c(C3).mul_add(b, c(C2)))
        .mul_add(u, c(C1).mul_add(b, 1.0));
    scale_by_pow2(j, n)
}

/// `j · 2^n` rounded once, for an integral `|n| <= 192`: two exact
/// scalings by powers of two of at most 96 each (a normal factor keeps the
/// first product exact, so only the second rounds), as `scalef` gives.
fn scale_by_pow2(j: f32, n: f32) -> f32 {
    let n1 = (n * 0.5).floor();
    let n2 = n - n1;
    let pow2 = |k: f32| f32::from_bits(((k as i32 + 127) as u32) << 23);
    j * pow2(n1) * pow2(n2)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(bits: u32) -> __m512 {
        _mm512_set1_ps(f32::from_bits(bits))
    }

    /// The routine on one register.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn exp16(v: &mut [f32; LANES]) {
        let x = _mm512_loadu_ps(v.as_ptr());
        let r = splat(SHIFT);
        let z = _mm512_fmadd_ps(x, splat(INV_LN2), r);
        let n = _mm512_sub_ps(z, r);
        let b = _mm512_fnmadd_ps(n, splat(LN2_LO), _mm512_fnmadd_ps(n, splat(LN2_HI), x));
        let huge = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(
                _mm512_fmadd_ps(splat(C5), b, splat(C4)),
                u,
                _mm512_fmadd_ps(splat(C3), b, splat(C2)),
            ),
            u,
            _mm512_fmadd_ps(splat(C1), b, _mm512_set1_ps(1.0)),
        );
        let mut out = _mm512_scalef_ps(j, n);
        if huge != 0 {
            // Far out of range: 0 below, infinity above (and NaN-free for
            // the -inf of a masked score).
            let zero = _mm512_setzero_ps();
            let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero);
            let alt = _mm512_mask_blend_ps(below, _mm512_set1_ps(f32::INFINITY), zero);
            out = _mm512_mask_blend_ps(huge, out, alt);
        }
        _mm512_storeu_ps(v.as_mut_ptr(), out);
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn splat8(bits: u32) -> __m256 {
        _mm256_set1_ps(f32::from_bits(bits))
    }

    /// `2^k` for integral `k` in -126..=127, lane by lane.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn pow2(k: __m256) -> __m256 {
        let e = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
    }

    /// The routine on eight lanes: the AVX-512 one's operations, with
    /// `scalef` as two exact power-of-two scalings (see the module docs).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let r = splat8(SHIFT);
        let z = _mm256_fmadd_ps(x, splat8(INV_LN2), r);
        let n = _mm256_sub_ps(z, r);
        let b = _mm256_fnmadd_ps(n, splat8(LN2_LO), _mm256_fnmadd_ps(n, splat8(LN2_HI), x));
        let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
        // Ordered, as the AVX-512 compare: NaN is not huge (and stays NaN).
        let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs, _mm256_set1_ps(192.0));
        let u = _mm256_mul_ps(b, b);
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                _mm256_fmadd_ps(splat8(C5), b, splat8(C4)),
                u,
                _mm256_fmadd_ps(splat8(C3), b, splat8(C2)),
            ),
            u,
            _mm256_fmadd_ps(splat8(C1), b, _mm256_set1_ps(1.0)),
        );
        let n1 = _mm256_floor_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5)));
        let n2 = _mm256_sub_ps(n, n1);
        let out = _mm256_mul_ps(_mm256_mul_ps(j, pow2(n1)), pow2(n2));
        if _mm256_movemask_ps(huge) == 0 {
            return out;
        }
        let zero = _mm256_setzero_ps();
        let below = _mm256_cmp_ps::<_CMP_LE_OQ>(n, zero);
        let alt = _mm256_blendv_ps(_mm256_set1_ps(f32::INFINITY), zero, below);
        _mm256_blendv_ps(out, alt, huge)
    }

    /// Sixteen values as two registers of eight.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp16_avx2(v: &mut [f32; LANES]) {
        // SAFETY: `v` holds 16 floats.
        unsafe {
            let lo = exp8(_mm256_loadu_ps(v.as_ptr()));
            let hi = exp8(_mm256_loadu_ps(v.as_ptr().add(8)));
            _mm256_storeu_ps(v.as_mut_ptr(), lo);
            _mm256_storeu_ps(v.as_mut_ptr().add(8), hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_true_value() {
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let mut v = [0f32; LANES];
            for (i, l) in v.iter_mut().enumerate() {
                *l = x + i as f32 * 0.000_37;
            }
            let inputs = v;
            exp16(&mut v);
            for (got, x) in v.iter().zip(inputs) {
                let want = (x as f64).exp() as f32;
                worst = worst.max(got.to_bits().abs_diff(want.to_bits()));
            }
            x += 0.0173;
        }
        assert!(worst <= 2, "{worst} ulp");
        let mut edges = [f32::NEG_INFINITY; LANES];
        edges[1] = 200.0;
        edges[2] = 0.0;
        exp16(&mut edges);
        assert_eq!(edges[0], 0.0);
        assert_eq!(edges[1], f32::INFINITY);
        assert_eq!(edges[2], 1.0);
    }

    /// Every path gives the bits of the AVX-512 routine: the AVX2 one and
    /// the scalar one against each other (and against AVX-512 where the
    /// CPU has it), over the whole range the softmax and SiLU meet and its
    /// edges.
    #[test]
    fn every_path_gives_the_same_bits() {
        let mut x = -104.0f32;
        let mut inputs = vec![f32::NEG_INFINITY, f32::INFINITY, f32::NAN, 0.0, -0.0];
        while x < 89.0 {
            inputs.push(x);
            x += 0.001_97;
        }
        inputs.extend([-87.33655, -88.72284, -103.0, -150.0, 88.72283, 88.7229]);
        for chunk in inputs.chunks(LANES) {
            let mut lanes = [0f32; LANES];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let scalar = lanes.map(exp_scalar);
            #[cfg(target_arch = "x86_64")]
            {
                if has_avx2() {
                    let mut v = lanes;
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { x86::exp16_avx2(&mut v) };
                    for ((a, b), x) in v.iter().zip(&scalar).zip(&lanes) {
                        assert!(
                            a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan(),
                            "exp({x}): AVX2 {a}, scalar {b}"
                        );
                    }
                }
                if has_avx512() {
                    let mut v = lanes;
                    // SAFETY: the CPU has AVX-512F and DQ (checked above).
                    unsafe { x86::exp16(&mut v) };
                    for ((a, b), x) in v.iter().zip(&scalar).zip(&lanes) {
                        assert!(
                            a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan(),
                            "exp({x}): AVX-512 {a}, scalar {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn softmax_and_swiglu_agree_with_their_definitions() {
        let mut scores: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let original = scores.clone();
        let max = original.iter().fold(f32::NEG_INFINITY, |m, s| m.max(*s));
        let sum = softmax_exp(&mut scores, max);
        let want: f64 = original.iter().map(|s| ((s - max) as f64).exp()).sum();
        assert!((sum - want).abs() < 1e-5 * want, "{sum} vs {want}");
        for (e, s) in scores.iter().zip(&original) {
            assert!((e - (s - max).exp()).abs() < 1e-6);
        }
        let mut gate: Vec<f32> = (0..40).map(|i| i as f32 * 0.3 - 6.0).collect();
        let up: Vec<f32> = (0..40).map(|i| 1.0 + i as f32 * 0.01).collect();
        let want: Vec<f32> = gate
            .iter()
            .zip(&up)
            .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
            .collect();
        swiglu(&mut gate, &up);
        for (g, w) in gate.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
}
