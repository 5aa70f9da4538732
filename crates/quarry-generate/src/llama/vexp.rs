//! The exponential of ggml's AVX-512 kernels, for the softmax and SiLU.
//!
//! ggml does not call the C library's `expf` there: it evaluates a short
//! polynomial (after ARM's optimized-routines expf: n = round(x / ln 2),
//! a degree-5 polynomial of the remainder, then scaling by 2^n), which
//! differs from `expf` in the last bits for about half of all inputs.
//! Those bits decide int8 roundings in the next quantized product, and so
//! near-ties in greedy decoding. This module evaluates the same
//! operations in the same order with AVX-512 when the CPU has it (as
//! llama.cpp built for the host does), and falls back to the C library's
//! `expf` elsewhere.
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

/// exp of 16 values in place.
fn exp16(v: &mut [f32; LANES]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has AVX-512F and DQ (checked above).
            unsafe { x86::exp16(v) };
            return;
        }
    }
    for x in v.iter_mut() {
        *x = x.exp();
    }
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
