//! Choosing the next token from logits: greedy, or llama.cpp's default
//! chain (repetition penalty, top-k, top-p, temperature, then a seeded
//! draw), with the limits a request may set validated up front.

use quarry_core::InvalidArgument;

/// How a request samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 for greedy (deterministic); else 0 < t <= 2.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the most likely tokens whose probabilities sum to p (1 = all).
    pub top_p: f32,
    /// Divide (or multiply, for negative logits) the logits of tokens seen
    /// in the last [`PENALTY_WINDOW`] tokens by this (1 = off).
    pub repetition_penalty: f32,
    /// Seed of the draw: the same seed, prompt and settings give the same
    /// text.
    pub seed: u64,
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Generation stops before the first of these strings.
    pub stop: Vec<String>,
}

/// Tokens the repetition penalty looks back over (llama.cpp's default).
pub const PENALTY_WINDOW: usize = 64;
/// Largest `max_new_tokens` a request may ask for.
pub const MAX_NEW_TOKENS: usize = 4096;
/// Most stop sequences, and the longest one in bytes.
pub const MAX_STOP_SEQUENCES: usize = 8;
/// Longest stop sequence, in bytes.
pub const MAX_STOP_BYTES: usize = 64;

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            repetition_penalty: 1.0,
            seed: 0,
            max_new_tokens: 512,
            stop: Vec::new(),
        }
    }
}

impl SamplingParams {
    /// Checks every field against its range; the error names the field
    /// (under `prefix`) and the limit.
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidArgument> {
        let field = |name: &str| format!("{prefix}{name}");
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(InvalidArgument::new(
                field("temperature"),
                format!("is {}; it must be between 0 and 2", self.temperature),
            ));
        }
        if self.top_k > 1000 {
            return Err(InvalidArgument::new(
                field("top_k"),
                format!("is {}; the limit is 1000 (0 means no limit)", self.top_k),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(InvalidArgument::new(
                field("top_p"),
                format!("is {}; it must be above 0 and at most 1", self.top_p),
            ));
        }
        if !(self.repetition_penalty.is_finite() && (1.0..=2.0).contains(&self.repetition_penalty))
        {
            return Err(InvalidArgument::new(
                field("repetition_penalty"),
                format!(
                    "is {}; it must be between 1 (off) and 2",
                    self.repetition_penalty
                ),
            ));
        }
        if self.max_new_tokens == 0 || self.max_new_tokens > MAX_NEW_TOKENS {
            return Err(InvalidArgument::new(
                field("max_new_tokens"),
                format!(
                    "is {}; it must be between 1 and {MAX_NEW_TOKENS}",
                    self.max_new_tokens
                ),
            ));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(InvalidArgument::new(
                field("stop"),
                format!(
                    "has {} sequences; the limit is {MAX_STOP_SEQUENCES}",
                    self.stop.len()
                ),
            ));
        }
        for (i, s) in self.stop.iter().enumerate() {
            if s.is_empty() || s.len() > MAX_STOP_BYTES {
                return Err(InvalidArgument::new(
                    format!("{prefix}stop[{i}]"),
                    format!("is {} bytes; it must be 1 to {MAX_STOP_BYTES}", s.len()),
                ));
            }
        }
        Ok(())
    }
}

/// A small seeded generator (PCG32): the draw must be reproducible from
/// the seed alone, on every platform and version.
#[derive(Debug, Clone)]
struct Pcg32 {
    state: u64,
}

impl Pcg32 {
    const MUL: u64 = 6_364_136_223_846_793_005;
    const INC: u64 = 1_442_695_040_888_963_407;

    fn new(seed: u64) -> Self {
        let mut rng = Self { state: 0 };
        rng.next_u32();
        rng.state = rng.state.wrapping_add(seed);
        rng.next_u32();
        rng
    }

    fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(Self::MUL).wrapping_add(Self::INC);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        let hi = (self.next_u32() >> 5) as u64;
        let lo = (self.next_u32() >> 6) as u64;
        ((hi << 26) | lo) as f64 / (1u64 << 53) as f64
    }
}

/// Picks tokens for one generation.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Pcg32,
}

/// The most likely token; ties go to the lowest id.
pub fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map_or(0, |(i, _)| i as u32)
}

impl Sampler {
    /// A sampler for `params` (validated by the caller).
    pub fn new(params: SamplingParams) -> Self {
        let rng = Pcg32::new(params.seed);
        Self { params, rng }
    }

    /// Chooses the next token; `recent` are the sequence's last tokens (the
    /// penalty looks at the last [`PENALTY_WINDOW`]).
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32]) -> u32 {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let window = &recent[recent.len().saturating_sub(PENALTY_WINDOW)..];
            let mut seen: Vec<u32> = window.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        // Candidates, most likely first (ties: lowest id first).
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u32, *l))
            .collect();
        let k = if p.top_k == 0 {
            cand.len()
        } else {
            p.top_k.min(cand.len())
        };
        if k < cand.len() {
            cand.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            cand.truncate(k);
        }
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // top-p on the untempered distribution, as llama.cpp orders it.
        if p.top_p < 1.0 {
            let probs = softmax(cand.iter().map(|c| c.1), 1.0);
            let mut sum = 0.0;
            let mut keep = cand.len();
            for (i, pr) in probs.iter().enumerate() {
                sum += pr;
                if sum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        let probs = softmax(cand.iter().map(|c| c.1), p.temperature);
        let mut r = self.rng.next_f64();
        for (c, pr) in cand.iter().zip(&probs) {
            if r < *pr {
                return c.0;
            }
            r -= pr;
        }
        cand.last().map_or(0, |c| c.0)
    }
}

fn softmax(logits: impl Iterator<Item = f32> + Clone, temperature: f32) -> Vec<f64> {
    let t = temperature as f64;
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.map(|l| ((l as f64 - max) / t).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.5, -1.0, 3.0, 0.5]
    }

    #[test]
    fn greedy_takes_the_best_and_the_lowest_id_on_ties() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&mut logits(), &[]), 1);
        // top_k 1 at any temperature is greedy too.
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.5,
            top_k: 1,
            ..Default::default()
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut logits(), &[]), 1);
        }
    }

    #[test]
    fn the_seed_fixes_the_draw_and_truncation_is_respected() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 3,
            top_p: 1.0,
            seed: 42,
            ..Default::default()
        };
        let draw = |params: &SamplingParams| {
            let mut s = Sampler::new(params.clone());
            (0..200)
                .map(|_| s.sample(&mut logits(), &[]))
                .collect::<Vec<_>>()
        };
        let a = draw(&params);
        assert_eq!(a, draw(&params), "same seed, same tokens");
        assert_ne!(
            a,
            draw(&SamplingParams {
                seed: 43,
                ..params.clone()
            })
        );
        // Only the top 3 (ids 1, 4, 2) ever come out, each of them.
        assert!(a.iter().all(|t| [1, 2, 4].contains(t)));
        for t in [1, 2, 4] {
            assert!(a.contains(&t), "{t} never drawn");
        }
        // A tiny top_p keeps only the best.
        let mut s = Sampler::new(SamplingParams {
            top_p: 0.01,
            ..params
        });
        assert!((0..50).all(|_| s.sample(&mut logits(), &[]) == 1));
    }

    #[test]
    fn repetition_penalty_demotes_recent_tokens() {
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.5,
            ..Default::default()
        });
        // 1 and 4 tie at 3.0; penalising 1 leaves 4 (3.0) over 1 (2.0).
        assert_eq!(s.sample(&mut logits(), &[1]), 4);
        let mut l = logits();
        s.sample(&mut l, &[3]);
        assert_eq!(l[3], -1.5, "negative logits are multiplied");
    }

    #[test]
    fn limits_name_the_field_and_the_limit() {
        let bad = |p: SamplingParams| p.validate("sampling.").unwrap_err().to_string();
        let d = SamplingParams::default();
        assert!(bad(SamplingParams {
            temperature: 3.0,
            ..d.clone()
        })
        .contains("sampling.temperature"));
        assert!(bad(SamplingParams {
            top_p: 0.0,
            ..d.clone()
        })
        .contains("sampling.top_p"));
        assert!(bad(SamplingParams {
            top_k: 5000,
            ..d.clone()
        })
        .contains("1000"));
        assert!(bad(SamplingParams {
            max_new_tokens: 0,
            ..d.clone()
        })
        .contains("4096"));
        assert!(bad(SamplingParams {
            repetition_penalty: 0.5,
            ..d.clone()
        })
        .contains("sampling.repetition_penalty"));
        assert!(bad(SamplingParams {
            stop: vec![String::new()],
            ..d.clone()
        })
        .contains("sampling.stop[0]"));
        assert!(d.validate("").is_ok());
    }
}
