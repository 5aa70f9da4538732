//! GGML block formats and the dot products of the decoder, with the
//! numerics of llama.cpp's CPU backend: activations are quantized per block
//! of 32 before a quantized weight multiplies them (Q8_1 for Q4_1 weights,
//! Q8_0 for Q8_0 weights), scales round through f16, and quantization
//! rounds half to even as ggml's SIMD path does. Matching those steps is
//! what keeps greedy decoding on the same tokens as llama.cpp.
//!
//! Kernels: AVX2 (integer multiply-adds of 32 lanes), chosen at run time,
//! and a portable fallback.

use half::f16;

/// Elements per block.
pub const QK: usize = 32;

/// Weight formats the decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// 4-bit with a scale and a minimum per block: 20 bytes per 32.
    Q4_1,
    /// 8-bit with a scale per block: 34 bytes per 32.
    Q8_0,
}

impl WeightType {
    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q4_1 => 20,
            WeightType::Q8_0 => 34,
        }
    }
}

/// One block of quantized activations: scale, scale times the sum of the
/// quants (used by Q4_1's minimum), and 32 quants.
#[derive(Debug, Clone, Copy)]
pub struct Q8Block {
    /// The scale.
    pub d: f32,
    /// The scale times the sum of the quants.
    pub s: f32,
    /// The quants.
    pub qs: [i8; QK],
}

/// `x` rounded to the nearest f16 (ties to even), as f32.
pub(super) fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Quantizes `x` (a multiple of 32 long) as ggml's quantize_row_q8_1 (and,
/// ignoring `s`, quantize_row_q8_0) does on x86.
pub fn quantize_row(x: &[f32], out: &mut Vec<Q8Block>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            out.clear();
            for block in x.chunks_exact(QK) {
                // SAFETY: the CPU has AVX2 (checked above); `block` is 32
                // floats.
                let (d, sum, qs) = unsafe { x86::quantize_block(block) };
                out.push(Q8Block {
                    d: f16_round(d),
                    s: f16_round(d * sum as f32),
                    qs,
                });
            }
            return;
        }
    }
    quantize_row_portable(x, out);
}

fn quantize_row_portable(x: &[f32], out: &mut Vec<Q8Block>) {
    out.clear();
    for block in x.chunks_exact(QK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut qs = [0i8; QK];
        let mut sum = 0i32;
        for (q, v) in qs.iter_mut().zip(block) {
            // Round half to even without a libm call: adding and removing
            // 1.5 * 2^23 leaves the nearest integer (|v * id| <= 127) under
            // the default rounding mode, and vectorises.
            const MAGIC: f32 = 12_582_912.0;
            let r = ((v * id + MAGIC) - MAGIC) as i32;
            *q = r as i8;
            sum += r;
        }
        out.push(Q8Block {
            d: f16_round(d),
            s: f16_round(d * sum as f32),
            qs,
        });
    }
}

/// Weights as GGML Q8_0 blocks (f16 scale, 32 signed bytes), as ggml's
/// quantize_row_q8_0_ref makes them: scale amax / 127, values rounded half
/// away from zero.
pub fn q8_0_blocks(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len() / QK * WeightType::Q8_0.block_bytes());
    for block in x.chunks_exact(QK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

fn read_f16(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

impl WeightType {
    /// Scales per block once packed (d, and m for Q4_1).
    pub fn scales_per_block(self) -> usize {
        match self {
            WeightType::Q4_1 => 2,
            WeightType::Q8_0 => 1,
        }
    }

    /// Quant bytes per block once packed.
    pub fn quant_bytes(self) -> usize {
        match self {
            WeightType::Q4_1 => 16,
            WeightType::Q8_0 => 32,
        }
    }
}

/// GGML blocks split into f32 scales and the quant bytes, so that kernels
/// read plain floats (f16 to f32 is exact) instead of converting per block.
pub fn pack(kind: WeightType, blocks: &[u8]) -> (Vec<f32>, Vec<u8>) {
    let n = blocks.len() / kind.block_bytes();
    let mut scales = Vec::with_capacity(n * kind.scales_per_block());
    let mut quants = Vec::with_capacity(n * kind.quant_bytes());
    for block in blocks.chunks_exact(kind.block_bytes()) {
        match kind {
            WeightType::Q4_1 => {
                scales.push(read_f16(&block[0..2]));
                scales.push(read_f16(&block[2..4]));
                quants.extend_from_slice(&block[4..20]);
            }
            WeightType::Q8_0 => {
                scales.push(read_f16(&block[0..2]));
                quants.extend_from_slice(&block[2..34]);
            }
        }
    }
    (scales, quants)
}

/// Dequantizes one packed row (for the embedding lookup).
pub fn dequantize_row(kind: WeightType, scales: &[f32], quants: &[u8], out: &mut [f32]) {
    for (b, dst) in out.chunks_exact_mut(QK).enumerate() {
        match kind {
            WeightType::Q4_1 => {
                let (d, m) = (scales[2 * b], scales[2 * b + 1]);
                for j in 0..16 {
                    let q = quants[16 * b + j];
                    dst[j] = (q & 0x0F) as f32 * d + m;
                    dst[j + 16] = (q >> 4) as f32 * d + m;
                }
            }
            WeightType::Q8_0 => {
                let d = scales[b];
                for j in 0..QK {
                    dst[j] = quants[32 * b + j] as i8 as f32 * d;
                }
            }
        }
    }
}

/// A packed-row-times-activations kernel: (scales, quants, activations).
pub type DotKernel = fn(&[f32], &[u8], &[Q8Block]) -> f32;

/// A packed row times four activation rows: each result has the bits the
/// one-row kernel gives, but the weights are unpacked once.
pub type Dot4Kernel = fn(&[f32], &[u8], [&[Q8Block]; 4]) -> [f32; 4];

/// An eight-row kernel, where one exists for `kind` on this CPU.
pub type Dot8Kernel = fn(&[f32], &[u8], [&[Q8Block]; 8]) -> [f32; 8];

/// The eight-row kernel for `kind`, if this CPU has one.
pub fn dot8_kernel(kind: WeightType) -> Option<Dot8Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        if kind == WeightType::Q4_1
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(x86::dot8_q4_1_vnni);
        }
    }
    None
}

/// The four-row kernel for `kind`.
pub fn dot4_kernel(kind: WeightType) -> Dot4Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return match kind {
                WeightType::Q4_1 => x86::dot4_q4_1_vnni,
                WeightType::Q8_0 => x86::dot4_q8_0_vnni,
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return match kind {
                WeightType::Q4_1 => x86::dot4_q4_1,
                WeightType::Q8_0 => x86::dot4_q8_0,
            };
        }
    }
    match kind {
        WeightType::Q4_1 => |s, q, a| a.map(|a| dot_q4_1_portable(s, q, a)),
        WeightType::Q8_0 => |s, q, a| a.map(|a| dot_q8_0_portable(s, q, a)),
    }
}

/// The fastest kernel this CPU runs for `kind`.
pub fn dot_kernel(kind: WeightType) -> DotKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return match kind {
                WeightType::Q4_1 => x86::dot_q4_1,
                WeightType::Q8_0 => x86::dot_q8_0,
            };
        }
    }
    match kind {
        WeightType::Q4_1 => dot_q4_1_portable,
        WeightType::Q8_0 => dot_q8_0_portable,
    }
}

fn dot_q4_1_portable(scales: &[f32], quants: &[u8], act: &[Q8Block]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in act.iter().enumerate() {
        let (d, m) = (scales[2 * b], scales[2 * b + 1]);
        let mut isum = 0i32;
        for j in 0..16 {
            let q = quants[16 * b + j];
            isum += (q & 0x0F) as i32 * a.qs[j] as i32 + (q >> 4) as i32 * a.qs[j + 16] as i32;
        }
        sum += d * a.d * isum as f32 + m * a.s;
    }
    sum
}

fn dot_q8_0_portable(scales: &[f32], quants: &[u8], act: &[Q8Block]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in act.iter().enumerate() {
        let isum: i32 = quants[32 * b..32 * b + 32]
            .iter()
            .zip(&a.qs)
            .map(|(w, x)| *w as i8 as i32 * *x as i32)
            .sum();
        sum += scales[b] * a.d * isum as f32;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Q8Block;

    /// One block of ggml's x86 quantize_row_q8_1 arithmetic: the scale
    /// (`amax / 127`), the sum of the quants and the quants, rounded half
    /// to even: the same values as the portable loop.
    ///
    /// # Safety
    /// The CPU must have AVX2; `block` holds 32 floats.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_block(block: &[f32]) -> (f32, i32, [i8; 32]) {
        assert!(block.len() >= 32);
        let p = block.as_ptr();
        // SAFETY: 32 floats are readable (asserted).
        let v = unsafe {
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        };
        let sign = _mm256_set1_ps(-0.0);
        let abs = v.map(|x| _mm256_andnot_ps(sign, x));
        let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps(m2, m2, 1)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let q = v.map(|x| {
            _mm256_cvtps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(_mm256_mul_ps(x, id)))
        });
        let total = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let t4 = _mm_add_epi32(
            _mm256_castsi256_si128(total),
            _mm256_extracti128_si256(total, 1),
        );
        let t2 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0b01_00_11_10));
        let t1 = _mm_add_epi32(t2, _mm_shuffle_epi32(t2, 0b10_11_00_01));
        let sum = _mm_cvtsi128_si32(t1);
        // Pack to bytes; the packs interleave 128-bit lanes, the permute
        // puts the 32 values back in order.
        let w = _mm256_packs_epi32(q[0], q[1]);
        let z = _mm256_packs_epi32(q[2], q[3]);
        let bytes = _mm256_packs_epi16(w, z);
        let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let mut qs = [0i8; 32];
        // SAFETY: `qs` is 32 bytes.
        unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), ordered) };
        (d, sum, qs)
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// A Q4_1 row times `N` activation rows (N = 1 is the one-row
    /// kernel: the weights are unpacked once per block for all N).
    #[target_feature(enable = "avx2,fma")]
    fn q4_1_xn<const N: usize>(scales: &[f32], quants: &[u8], acts: [&[Q8Block]; N]) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut mins = [0f32; N];
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let blocks = quants.len() / 16;
        assert!(acts.iter().all(|a| a.len() >= blocks) && scales.len() >= 2 * blocks);
        for b in 0..blocks {
            let (d, m) = (scales[2 * b], scales[2 * b + 1]);
            // SAFETY: block `b` of `quants` has 16 readable bytes.
            let w = unsafe {
                let packed = _mm_loadu_si128(quants.as_ptr().add(16 * b).cast());
                _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low)
            };
            for i in 0..N {
                let a = &acts[i][b];
                // SAFETY: `a.qs` is 32 bytes.
                let x = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
                let quads = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
                acc[i] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(quads), acc[i]);
                mins[i] += m * a.s;
            }
        }
        std::array::from_fn(|i| hsum(acc[i]) + mins[i])
    }

    /// A Q8_0 row times `N` activation rows.
    #[target_feature(enable = "avx2,fma")]
    fn q8_0_xn<const N: usize>(scales: &[f32], quants: &[u8], acts: [&[Q8Block]; N]) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let ones = _mm256_set1_epi16(1);
        let blocks = quants.len() / 32;
        assert!(acts.iter().all(|a| a.len() >= blocks) && scales.len() >= blocks);
        for b in 0..blocks {
            let d = scales[b];
            // SAFETY: block `b` of `quants` has 32 readable bytes.
            let w = unsafe { _mm256_loadu_si256(quants.as_ptr().add(32 * b).cast()) };
            // maddubs wants unsigned first: move w's sign onto x.
            let aw = _mm256_sign_epi8(w, w);
            for i in 0..N {
                let a = &acts[i][b];
                // SAFETY: `a.qs` is 32 bytes.
                let x = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
                let quads =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), ones);
                acc[i] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(quads), acc[i]);
            }
        }
        std::array::from_fn(|i| hsum(acc[i]))
    }

    /// As `q4_1_xn` with one VNNI instruction for the byte products (the
    /// same integer sums).
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    fn q4_1_xn_vnni<const N: usize>(
        scales: &[f32],
        quants: &[u8],
        acts: [&[Q8Block]; N],
    ) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut mins = [0f32; N];
        let low = _mm256_set1_epi8(0x0F);
        let blocks = quants.len() / 16;
        assert!(acts.iter().all(|a| a.len() >= blocks) && scales.len() >= 2 * blocks);
        for b in 0..blocks {
            let (d, m) = (scales[2 * b], scales[2 * b + 1]);
            // SAFETY: block `b` of `quants` has 16 readable bytes.
            let w = unsafe {
                let packed = _mm_loadu_si128(quants.as_ptr().add(16 * b).cast());
                _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low)
            };
            for i in 0..N {
                let a = &acts[i][b];
                // SAFETY: `a.qs` is 32 bytes.
                let x = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
                let quads = _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x);
                acc[i] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(quads), acc[i]);
                mins[i] += m * a.s;
            }
        }
        std::array::from_fn(|i| hsum(acc[i]) + mins[i])
    }

    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    fn q8_0_xn_vnni<const N: usize>(
        scales: &[f32],
        quants: &[u8],
        acts: [&[Q8Block]; N],
    ) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let blocks = quants.len() / 32;
        assert!(acts.iter().all(|a| a.len() >= blocks) && scales.len() >= blocks);
        for b in 0..blocks {
            let d = scales[b];
            // SAFETY: block `b` of `quants` has 32 readable bytes.
            let w = unsafe { _mm256_loadu_si256(quants.as_ptr().add(32 * b).cast()) };
            let aw = _mm256_sign_epi8(w, w);
            for i in 0..N {
                let a = &acts[i][b];
                // SAFETY: `a.qs` is 32 bytes.
                let x = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
                let quads = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, _mm256_sign_epi8(x, w));
                acc[i] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(quads), acc[i]);
            }
        }
        std::array::from_fn(|i| hsum(acc[i]))
    }

    pub(super) fn dot4_q4_1_vnni(scales: &[f32], quants: &[u8], acts: [&[Q8Block]; 4]) -> [f32; 4] {
        // SAFETY: handed out by `dot4_kernel` only after checking
        // AVX512-VNNI, AVX512VL and FMA (AVX2 comes with AVX512VL).
        unsafe { q4_1_xn_vnni(scales, quants, acts) }
    }

    pub(super) fn dot8_q4_1_vnni(scales: &[f32], quants: &[u8], acts: [&[Q8Block]; 8]) -> [f32; 8] {
        // SAFETY: as in `dot4_q4_1_vnni`.
        unsafe { q4_1_xn_vnni(scales, quants, acts) }
    }

    pub(super) fn dot4_q8_0_vnni(scales: &[f32], quants: &[u8], acts: [&[Q8Block]; 4]) -> [f32; 4] {
        // SAFETY: as in `dot4_q4_1_vnni`.
        unsafe { q8_0_xn_vnni(scales, quants, acts) }
    }

    pub(super) fn dot4_q4_1(scales: &[f32], quants: &[u8], acts: [&[Q8Block]; 4]) -> [f32; 4] {
        // SAFETY: handed out by `dot4_kernel` only after checking AVX2+FMA.
        unsafe { q4_1_xn(scales, quants, acts) }
    }

    pub(super) fn dot4_q8_0(scales: &[f32], quants: &[u8], acts: [&[Q8Block]; 4]) -> [f32; 4] {
        // SAFETY: as in `dot4_q4_1`.
        unsafe { q8_0_xn(scales, quants, acts) }
    }

    pub(super) fn dot_q4_1(scales: &[f32], quants: &[u8], act: &[Q8Block]) -> f32 {
        // SAFETY: handed out by `dot_kernel` only after checking AVX2+FMA.
        unsafe { q4_1_xn(scales, quants, [act])[0] }
    }

    pub(super) fn dot_q8_0(scales: &[f32], quants: &[u8], act: &[Q8Block]) -> f32 {
        // SAFETY: as in `dot_q4_1`.
        unsafe { q8_0_xn(scales, quants, [act])[0] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_weights_round_trip_within_half_a_step() {
        let x: Vec<f32> = (0..4 * QK)
            .map(|i| ((i * 29) % 31) as f32 * 0.013 - 0.2 + if i < QK { 0.0 } else { i as f32 })
            .chain(std::iter::repeat_n(0.0, QK))
            .collect();
        let (scales, quants) = pack(WeightType::Q8_0, &q8_0_blocks(&x));
        let mut back = vec![0f32; x.len()];
        dequantize_row(WeightType::Q8_0, &scales, &quants, &mut back);
        for (b, (block, got)) in x.chunks(QK).zip(back.chunks(QK)).enumerate() {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Half a step of amax / 127, plus the f16 scale's rounding.
            let tolerance = amax / 254.0 + amax * 1e-3;
            for (a, g) in block.iter().zip(got) {
                assert!((a - g).abs() <= tolerance, "block {b}: {a} became {g}");
            }
        }
        assert!(back[4 * QK..].iter().all(|v| *v == 0.0));
    }

    /// A deterministic Q4_1 and Q8_0 row of `n` elements.
    fn rows(n: usize) -> (Vec<u8>, Vec<u8>) {
        let mut q4 = Vec::new();
        let mut q8 = Vec::new();
        for b in 0..n / QK {
            q4.extend(f16::from_f32(0.01 * (b + 1) as f32).to_le_bytes());
            q4.extend(f16::from_f32(-0.05).to_le_bytes());
            q4.extend((0..16).map(|j| ((j * 7 + b) % 256) as u8));
            q8.extend(f16::from_f32(0.02).to_le_bytes());
            q8.extend((0..QK).map(|j| ((j as i32 * 37 + b as i32 * 11) % 255 - 127) as i8 as u8));
        }
        (q4, q8)
    }

    #[test]
    fn kernels_equal_dequantized_dot_products() {
        let n = 576;
        let (q4, q8) = rows(n);
        let x: Vec<f32> = (0..n).map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0).collect();
        let mut act = Vec::new();
        quantize_row(&x, &mut act);
        // The activations as the kernels see them.
        let xq: Vec<f32> = act
            .iter()
            .flat_map(|b| b.qs.iter().map(move |q| *q as f32 * b.d))
            .collect();
        for (kind, row) in [(WeightType::Q4_1, &q4), (WeightType::Q8_0, &q8)] {
            let (scales, quants) = pack(kind, row);
            let mut w = vec![0f32; n];
            dequantize_row(kind, &scales, &quants, &mut w);
            let want: f32 = w.iter().zip(&xq).map(|(a, b)| a * b).sum();
            let fast = dot_kernel(kind)(&scales, &quants, &act);
            let portable = match kind {
                WeightType::Q4_1 => dot_q4_1_portable(&scales, &quants, &act),
                WeightType::Q8_0 => dot_q8_0_portable(&scales, &quants, &act),
            };
            // Q4_1's minimum uses s = d * sum(q) rounded through f16.
            let tol = 2e-2 * (1.0 + want.abs());
            assert!((fast - want).abs() < tol, "{kind:?}: {fast} vs {want}");
            assert!(
                (portable - fast).abs() < 1e-3 * (1.0 + want.abs()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn vector_quantization_equals_the_portable_loop() {
        let x: Vec<f32> = (0..32 * 40)
            .map(|i| {
                let v = ((i * 7919) % 1013) as f32 / 97.0 - 5.0;
                if i % 97 == 0 {
                    0.5 * (i % 5) as f32
                } else {
                    v
                }
            })
            .chain([0.0; 32])
            .chain((0..32).map(|i| i as f32 - 15.5))
            .collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        quantize_row(&x, &mut a);
        quantize_row_portable(&x, &mut b);
        assert_eq!(a.len(), b.len());
        for (p, q) in a.iter().zip(&b) {
            assert_eq!((p.d, p.s, p.qs), (q.d, q.s, q.qs));
        }
    }

    #[test]
    fn quantization_rounds_half_to_even_and_keeps_zero_blocks() {
        let mut x = vec![0f32; 64];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        let mut out = Vec::new();
        quantize_row(&x, &mut out);
        assert_eq!(out[0].d, 1.0);
        assert_eq!(&out[0].qs[..3], &[127, 2, -4]);
        assert_eq!(out[1].d, 0.0);
        assert!(out[1].qs.iter().all(|q| *q == 0));
    }
}
