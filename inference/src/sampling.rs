//! Token sampling: penalties, temperature, top-k, top-p and seeded randomness.
//!
//! Works on one row of logits at a time. Temperature 0 is greedy (argmax) and ignores the other
//! knobs except the penalties, which change which token is the largest.

use std::collections::{HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Validated sampling parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy; otherwise logits are divided by it. Range 0..=2.
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Seed for reproducible sampling; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Multiplicative penalty (> 0; 1 = off) on tokens already in the prompt or the output.
    pub repetition_penalty: f32,
    /// How many of the latest tokens (prompt, then output) the repetition penalty looks at;
    /// `None`: all of them.
    pub repeat_last_n: Option<usize>,
    /// Subtracted once from every token already generated (-2..=2).
    pub presence_penalty: f32,
    /// Subtracted per occurrence of a token already generated (-2..=2).
    pub frequency_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: None,
            repetition_penalty: 1.0,
            repeat_last_n: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
}

/// Per-sequence sampler state: the RNG and the counts the penalties need.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// Occurrences of each generated token.
    generated: HashMap<u32, u32>,
    /// The tokens the repetition penalty looks at (see [`Recent`]).
    recent: Recent,
    scratch: Vec<(f32, u32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams, prompt: &[u32]) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let mut recent = Recent::new(match params.repetition_penalty != 1.0 {
            true => params.repeat_last_n,
            false => Some(0),
        });
        for &t in prompt {
            recent.push(t);
        }
        Self {
            params,
            rng,
            generated: HashMap::new(),
            recent,
            scratch: Vec::new(),
        }
    }

    /// Records a token chosen for this sequence (the penalties look at it from now on).
    pub fn accept(&mut self, token: u32) {
        *self.generated.entry(token).or_insert(0) += 1;
        self.recent.push(token);
    }

    /// Picks the next token from `logits` (changed in place by the penalties).
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        self.apply_penalties(logits);
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        let inv_t = 1.0 / self.params.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let cands = &mut self.scratch;
        cands.clear();
        cands.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| (((l - max) * inv_t).exp(), i as u32)),
        );
        if cands.is_empty() {
            return argmax(logits);
        }
        let k = match self.params.top_k {
            0 => cands.len(),
            k => k.min(cands.len()),
        };
        keep_top(cands, k);
        if self.params.top_p < 1.0 {
            nucleus(cands, self.params.top_p);
        }
        let total: f32 = cands.iter().map(|c| c.0).sum();
        let mut r = self.rng.random::<f32>() * total;
        for &(p, id) in cands.iter() {
            if r < p {
                return id;
            }
            r -= p;
        }
        cands.last().map(|c| c.1).unwrap_or_else(|| argmax(logits))
    }

    fn apply_penalties(&self, logits: &mut [f32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            for &id in self.recent.counts.keys() {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            for (&id, &n) in &self.generated {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= p.presence_penalty + p.frequency_penalty * n as f32;
                }
            }
        }
    }
}

/// The distinct tokens among the latest `limit` of a sequence (all of them without a limit).
#[derive(Debug)]
struct Recent {
    limit: Option<usize>,
    /// The window's tokens in order; kept only when there is a limit.
    order: VecDeque<u32>,
    /// Occurrences of each token in the window.
    counts: HashMap<u32, u32>,
}

impl Recent {
    fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            order: VecDeque::new(),
            counts: HashMap::new(),
        }
    }

    fn push(&mut self, token: u32) {
        let Some(limit) = self.limit else {
            *self.counts.entry(token).or_insert(0) += 1;
            return;
        };
        if limit == 0 {
            return;
        }
        if self.order.len() == limit
            && let Some(old) = self.order.pop_front()
            && let Some(n) = self.counts.get_mut(&old)
        {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&old);
            }
        }
        self.order.push_back(token);
        *self.counts.entry(token).or_insert(0) += 1;
    }
}

/// Index of the largest value; the first one on ties, as llama.cpp's greedy sampler does.
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in xs.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// Keeps the `k` largest weights (unordered).
fn keep_top(cands: &mut Vec<(f32, u32)>, k: usize) {
    if k < cands.len() {
        cands.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
        cands.truncate(k);
    }
}

/// Keeps the smallest set of most likely candidates whose mass reaches `top_p`, sorted by weight.
/// Sorts progressively larger heads so the common case never sorts the whole vocabulary.
fn nucleus(cands: &mut Vec<(f32, u32)>, top_p: f32) {
    let total: f32 = cands.iter().map(|c| c.0).sum();
    let target = top_p * total;
    let mut head = 256usize.min(cands.len());
    loop {
        if head < cands.len() {
            cands.select_nth_unstable_by(head, |a, b| b.0.total_cmp(&a.0));
        }
        cands[..head].sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut acc = 0.0;
        for i in 0..head {
            acc += cands[i].0;
            if acc >= target {
                cands.truncate(i + 1);
                return;
            }
        }
        if head == cands.len() {
            return;
        }
        head = (head * 16).min(cands.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32, top_p: f32, top_k: usize, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature: t,
            top_p,
            top_k,
            seed: Some(seed),
            ..Default::default()
        }
    }

    #[test]
    fn greedy_takes_argmax_first_on_ties() {
        let mut s = Sampler::new(SamplingParams::greedy(), &[]);
        assert_eq!(s.sample(&mut [0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let run = |seed| {
            let mut s = Sampler::new(params(1.0, 0.9, 50, seed), &[]);
            (0..20)
                .map(|_| s.sample(&mut logits.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(params(1.5, 1.0, 1, 3), &[]);
        for _ in 0..10 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 5.0, 4.9]), 2);
        }
    }

    #[test]
    fn top_p_excludes_the_tail() {
        // Probabilities ~ 0.6, 0.3, 0.1 (after softmax of logs); top_p 0.8 keeps the first two.
        let logits = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        let mut s = Sampler::new(params(1.0, 0.8, 0, 11), &[]);
        for _ in 0..200 {
            assert_ne!(s.sample(&mut logits.clone()), 2);
        }
    }

    #[test]
    fn nucleus_handles_large_vocabularies() {
        let mut cands: Vec<(f32, u32)> = (0..100_000).map(|i| (1.0, i)).collect();
        nucleus(&mut cands, 0.5);
        assert_eq!(cands.len(), 50_000);
    }

    #[test]
    fn penalties_change_the_choice() {
        let mut s = Sampler::new(
            SamplingParams {
                presence_penalty: 2.0,
                ..SamplingParams::greedy()
            },
            &[],
        );
        s.accept(0);
        assert_eq!(s.sample(&mut [1.0, 0.5]), 1);
        let mut r = Sampler::new(
            SamplingParams {
                repetition_penalty: 2.0,
                ..SamplingParams::greedy()
            },
            &[0],
        );
        assert_eq!(r.sample(&mut [1.0, 0.6]), 1);
    }

    #[test]
    fn repetition_penalty_looks_at_the_latest_tokens_only() {
        let windowed = |last_n| {
            Sampler::new(
                SamplingParams {
                    repetition_penalty: 2.0,
                    repeat_last_n: last_n,
                    ..SamplingParams::greedy()
                },
                &[0, 1],
            )
        };
        // Token 0 left a window of one when token 1 came after it; a window of two holds both.
        assert_eq!(windowed(Some(1)).sample(&mut [1.0, 0.9, 0.6]), 0);
        assert_eq!(windowed(Some(2)).sample(&mut [1.0, 0.9, 0.6]), 2);
        assert_eq!(windowed(Some(0)).sample(&mut [1.0, 0.9, 0.6]), 0);
        assert_eq!(windowed(None).sample(&mut [1.0, 0.9, 0.6]), 2);
        // Generated tokens enter the window and push the prompt's out.
        let mut s = windowed(Some(2));
        s.accept(2);
        s.accept(2);
        assert_eq!(s.sample(&mut [1.0, 0.9, 0.6]), 0);
        // A token repeated inside the window is divided once, not once per occurrence.
        let mut s = windowed(Some(4));
        s.accept(0);
        assert_eq!(s.sample(&mut [1.0, 0.0, 0.4]), 0);
    }
}
