//! Distance kernels for searching: dot product (Quarry's cosine over unit
//! vectors) and squared L2, with AVX-512 and AVX2+FMA versions chosen once
//! at run time and a portable fallback.
//!
//! The graph's build and search both call them: a distance is most of the
//! work of either, and a kernel picked once and called through a plain
//! function pointer measured faster here than detecting the CPU per call
//! (what hnsw_rs's anndists did, with no FMA path).

/// What "near" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `1 - a·b`: cosine distance for unit vectors (Quarry's vectors).
    Dot,
    /// `|a - b|²`: squared Euclidean distance.
    L2,
}

/// A distance function: smaller is nearer.
pub type Kernel = fn(&[f32], &[f32]) -> f32;

/// The dot product of a float query with a row of signed bytes (the int8
/// codes of [`crate::hnsw`]'s quantised vectors).
pub type CodeKernel = fn(&[f32], &[i8]) -> f32;

/// The fastest float-by-byte dot product this CPU runs.
pub fn code_kernel() -> CodeKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return x86::dot_codes_512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return x86::dot_codes;
        }
    }
    dot_codes_portable
}

/// Float-by-byte dot product with eight independent sums.
pub fn dot_codes_portable(a: &[f32], c: &[i8]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cc) = (a.chunks_exact(8), c.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cc.remainder())
        .map(|(x, &y)| x * y as f32)
        .sum();
    for (x, y) in ca.zip(cc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i] as f32;
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Metric {
    /// The fastest kernel this CPU runs.
    pub fn kernel(self) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return match self {
                    Metric::Dot => x86::dot_distance_512,
                    Metric::L2 => x86::l2_distance_512,
                };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return match self {
                    Metric::Dot => x86::dot_distance,
                    Metric::L2 => x86::l2_distance,
                };
            }
        }
        match self {
            Metric::Dot => |a, b| 1.0 - dot_portable(a, b),
            Metric::L2 => l2_portable,
        }
    }
}

/// Dot product with eight independent sums, which compilers vectorise.
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn l2_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Sums the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: every load reads 8 floats at offsets below `n`, the
        // length of both slices.
        unsafe {
            while i + 32 <= n {
                for (j, a) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    *a =
                        _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o)), *a);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i)),
                    _mm256_loadu_ps(pb.add(i)),
                    acc[0],
                );
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut s = hsum(sum);
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: as in `dot`.
        unsafe {
            while i + 32 <= n {
                for (j, a) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o)));
                    *a = _mm256_fmadd_ps(d, d, *a);
                }
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut s = hsum(sum);
        while i < n {
            let d = a[i] - b[i];
            s += d * d;
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx512f")]
    fn dot512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut i = 0;
        // SAFETY: every load reads 16 floats at offsets below `n`, the
        // length of both slices.
        unsafe {
            while i + 32 <= n {
                acc[0] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i)),
                    _mm512_loadu_ps(pb.add(i)),
                    acc[0],
                );
                acc[1] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    acc[1],
                );
                i += 32;
            }
            while i + 16 <= n {
                acc[0] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i)),
                    _mm512_loadu_ps(pb.add(i)),
                    acc[0],
                );
                i += 16;
            }
        }
        let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx512f")]
    fn l2_512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut i = 0;
        // SAFETY: as in `dot512`.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                );
                acc[0] = _mm512_fmadd_ps(d0, d0, acc[0]);
                acc[1] = _mm512_fmadd_ps(d1, d1, acc[1]);
                i += 32;
            }
            while i + 16 <= n {
                let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
                i += 16;
            }
        }
        let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        while i < n {
            let d = a[i] - b[i];
            s += d * d;
            i += 1;
        }
        s
    }

    /// Sixteen bytes widened to floats per step (AVX-512F's
    /// sign-extending conversion), two independent sums.
    #[target_feature(enable = "avx512f")]
    fn codes512(a: &[f32], c: &[i8]) -> f32 {
        let n = a.len().min(c.len());
        let (pa, pc) = (a.as_ptr(), c.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut i = 0;
        // SAFETY: every load reads 16 floats or 16 bytes at offsets below
        // `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                for (j, a) in acc.iter_mut().enumerate() {
                    let o = i + 16 * j;
                    let bytes = _mm_loadu_si128(pc.add(o).cast::<__m128i>());
                    let wide = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
                    *a = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(o)), wide, *a);
                }
                i += 32;
            }
            while i + 16 <= n {
                let bytes = _mm_loadu_si128(pc.add(i).cast::<__m128i>());
                let wide = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
                acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), wide, acc[0]);
                i += 16;
            }
        }
        let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        while i < n {
            s += a[i] * c[i] as f32;
            i += 1;
        }
        s
    }

    /// Eight bytes widened to floats per step, four independent sums.
    #[target_feature(enable = "avx2,fma")]
    fn codes(a: &[f32], c: &[i8]) -> f32 {
        let n = a.len().min(c.len());
        let (pa, pc) = (a.as_ptr(), c.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: every load reads 8 floats or 8 bytes at offsets below
        // `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                for (j, a) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    let bytes = _mm_loadl_epi64(pc.add(o).cast::<__m128i>());
                    let wide = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(o)), wide, *a);
                }
                i += 32;
            }
            while i + 8 <= n {
                let bytes = _mm_loadl_epi64(pc.add(i).cast::<__m128i>());
                let wide = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), wide, acc[0]);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut s = hsum(sum);
        while i < n {
            s += a[i] * c[i] as f32;
            i += 1;
        }
        s
    }

    pub(super) fn dot_codes_512(a: &[f32], c: &[i8]) -> f32 {
        // SAFETY: only handed out by `code_kernel` after checking that the
        // CPU has AVX-512F.
        unsafe { codes512(a, c) }
    }

    pub(super) fn dot_codes(a: &[f32], c: &[i8]) -> f32 {
        // SAFETY: only handed out by `code_kernel` after checking that the
        // CPU has AVX2 and FMA.
        unsafe { codes(a, c) }
    }

    pub(super) fn dot_distance_512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only handed out by `Metric::kernel` after checking that
        // the CPU has AVX-512F.
        1.0 - unsafe { dot512(a, b) }
    }

    pub(super) fn l2_distance_512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as in `dot_distance_512`.
        unsafe { l2_512(a, b) }
    }

    pub(super) fn dot_distance(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only handed out by `Metric::kernel` after checking that
        // the CPU has AVX2 and FMA.
        1.0 - unsafe { dot(a, b) }
    }

    pub(super) fn l2_distance(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as in `dot_distance`.
        unsafe { l2(a, b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_the_definition_at_every_length() {
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 100, 384, 784] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 / 7.0 - 0.6).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13) % 5) as f32 / 3.0 - 0.4).collect();
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            let tol = 1e-4 * (1.0 + n as f32);
            assert!(
                (Metric::Dot.kernel()(&a, &b) - (1.0 - dot)).abs() < tol,
                "dot {n}"
            );
            assert!((Metric::L2.kernel()(&a, &b) - l2).abs() < tol, "l2 {n}");
            assert!((dot_portable(&a, &b) - dot).abs() < tol);
            assert!((l2_portable(&a, &b) - l2).abs() < tol);
            let c: Vec<i8> = (0..n).map(|i| ((i * 53) % 256) as u8 as i8).collect();
            let dc: f32 = a.iter().zip(&c).map(|(x, &y)| x * y as f32).sum();
            let tol = 1e-4 * (1.0 + dc.abs() + n as f32);
            assert!((code_kernel()(&a, &c) - dc).abs() < tol, "codes {n}");
            assert!((dot_codes_portable(&a, &c) - dc).abs() < tol);
        }
    }
}
