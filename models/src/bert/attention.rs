//! Softmax attention of one sequence and one head on the CPU, for the packed encoders (BERT's
//! and multilingual-e5's). On CPUs with AVX2 and FMA both products are register-tiled GEMMs
//! over blocks of queries (`super::attention_blocked`). Elsewhere the head's keys and values
//! are first copied out transposed (one row per head dimension), so that both products run
//! along the sequence: a query's scores are `d` axpys over all keys at once, and each output
//! value is one dot product of the probabilities with a value row. Both loops are long and
//! contiguous, so they vectorise, and no product ends in a horizontal sum per key.

use super::math;
#[cfg(target_arch = "x86_64")]
use super::{attention_blocked, f32_avx2};
use crate::kernels::SyncPtr;

/// Where one sequence's rows sit in the packed matrix.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    pub start: usize,
    pub len: usize,
}

/// Softmax attention of every sequence of `spans` and each of `heads` heads over that
/// sequence's own keys, on the compute pool (one work item per sequence and head). `qkv`
/// rows are `[q | k | v]`, each `h` wide with the heads side by side; returns `[tokens, h]`.
pub(crate) fn attention(
    qkv: &[f32],
    tokens: usize,
    spans: &[Span],
    h: usize,
    heads: usize,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    let blocked = f32_avx2::available() && (h / heads).is_multiple_of(f32_avx2::STRIP);
    #[cfg(not(target_arch = "x86_64"))]
    let blocked = false;
    attention_with(qkv, tokens, spans, h, heads, blocked)
}

/// [`attention`], by the blocked GEMMs when `blocked` (which needs AVX2, FMA and a head
/// dimension that is a multiple of 8).
fn attention_with(
    qkv: &[f32],
    tokens: usize,
    spans: &[Span],
    h: usize,
    heads: usize,
    blocked: bool,
) -> Vec<f32> {
    let d = h / heads;
    let mut out = vec![0f32; tokens * h];
    let dst = SyncPtr(out.as_mut_ptr());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = blocked;
    candle_core::utils::barrier_pool().execute_chunked(spans.len() * heads, |items| {
        let mut scratch = HeadScratch::default();
        #[cfg(target_arch = "x86_64")]
        let mut blocked_scratch = attention_blocked::Scratch::default();
        for item in items {
            let (span, head) = (spans[item / heads], item % heads);
            let at = Head {
                qkv,
                stride: 3 * h,
                start: span.start,
                len: span.len,
                cols: [head * d, h + head * d, 2 * h + head * d],
                d,
            };
            #[cfg(target_arch = "x86_64")]
            if blocked {
                // SAFETY: `available` holds and `d` is a multiple of 8 (the condition of
                // `blocked`); the
                // head's output columns of the sequence's rows lie inside `out` (`tokens × h`),
                // are still zero, and belong to this work item alone; `out` outlives the job.
                unsafe {
                    let first = dst.0.wrapping_add(span.start * h + head * d);
                    attention_blocked::attend(&mut blocked_scratch, &at, first, h);
                }
                continue;
            }
            attend(&mut scratch, &at, |i| {
                // SAFETY: row `span.start + i`'s columns of this head lie inside `out`
                // (`tokens × h`) and belong to this work item alone; `out` outlives the pool
                // job.
                unsafe { dst.slice((span.start + i) * h + head * d, d) }
            });
        }
    });
    out
}

/// Buffers one thread reuses from head to head.
#[derive(Default)]
struct HeadScratch {
    /// Keys, `[d, len]`.
    kt: Vec<f32>,
    /// Values, `[d, len]`.
    vt: Vec<f32>,
    /// One query's scores, then its probabilities.
    probs: Vec<f32>,
}

/// Where one head of one sequence lies in a packed `[tokens, stride]` matrix of queries, keys
/// and values.
pub(super) struct Head<'a> {
    pub(super) qkv: &'a [f32],
    /// Values per row of `qkv`.
    pub(super) stride: usize,
    /// The sequence's first row and its length.
    pub(super) start: usize,
    pub(super) len: usize,
    /// The first column of the head's queries, keys and values.
    pub(super) cols: [usize; 3],
    /// Head dimension.
    pub(super) d: usize,
}

impl Head<'_> {
    pub(super) fn at(&self, t: usize, part: usize) -> &[f32] {
        &self.qkv[(self.start + t) * self.stride + self.cols[part]..][..self.d]
    }
}

/// `softmax(q·Kᵀ / √d) · V` for every query of `head`, written into `ctx(i)` (`d` values) for
/// query `i`.
fn attend<'o>(s: &mut HeadScratch, head: &Head<'_>, mut ctx: impl FnMut(usize) -> &'o mut [f32]) {
    let (len, d) = (head.len, head.d);
    let scale = 1.0 / (d as f32).sqrt();
    s.kt.resize(d * len, 0.0);
    s.vt.resize(d * len, 0.0);
    s.probs.resize(len, 0.0);
    for t in 0..len {
        for (c, (&k, &v)) in head.at(t, 1).iter().zip(head.at(t, 2)).enumerate() {
            s.kt[c * len + t] = k;
            s.vt[c * len + t] = v;
        }
    }
    for i in 0..len {
        let probs = &mut s.probs[..len];
        probs.fill(0.0);
        for (c, &q) in head.at(i, 0).iter().enumerate() {
            math::axpy(q * scale, &s.kt[c * len..][..len], probs);
        }
        let max = probs.iter().fold(f32::NEG_INFINITY, |m, &p| m.max(p));
        probs.iter_mut().for_each(|p| *p = math::exp(*p - max));
        let inv = 1.0 / math::sum(probs);
        for (c, out) in ctx(i).iter_mut().enumerate() {
            *out = math::dot(probs, &s.vt[c * len..][..len]) * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook form, in f64.
    fn reference(qkv: &[f32], spans: &[Span], h: usize, heads: usize) -> Vec<f64> {
        let d = h / heads;
        let tokens: usize = spans.iter().map(|s| s.len).sum();
        let mut out = vec![0f64; tokens * h];
        let at = |t: usize, part: usize, head: usize, c: usize| {
            f64::from(qkv[t * 3 * h + part * h + head * d + c])
        };
        for s in spans {
            for head in 0..heads {
                for i in s.start..s.start + s.len {
                    let scores: Vec<f64> = (s.start..s.start + s.len)
                        .map(|j| {
                            (0..d)
                                .map(|c| at(i, 0, head, c) * at(j, 1, head, c))
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..d {
                        out[i * h + head * d + c] = (s.start..s.start + s.len)
                            .zip(&e)
                            .map(|(j, p)| p / sum * at(j, 2, head, c))
                            .sum();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn attention_matches_the_textbook_form_and_keeps_sequences_apart() {
        let (h, heads) = (24, 3);
        // Lengths around the 8-lane loops' edges, and a sequence of one token.
        let lens = [1usize, 7, 8, 9, 20, 100];
        let mut spans = Vec::new();
        let mut start = 0;
        for len in lens {
            spans.push(Span { start, len });
            start += len;
        }
        let mut seed = 0x9e37_79b9_u64;
        let qkv: Vec<f32> = (0..start * 3 * h)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect();
        let want = reference(&qkv, &spans, h, heads);
        #[cfg(target_arch = "x86_64")]
        let forms = [false, f32_avx2::available()];
        #[cfg(not(target_arch = "x86_64"))]
        let forms = [false];
        for blocked in forms {
            let got = attention_with(&qkv, start, &spans, h, heads, blocked);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(*g) - w).abs() < 1e-5,
                    "blocked {blocked}, value {i}: {g} against {w}"
                );
            }
            // A one-token sequence attends only to itself: its output is its own value.
            for c in 0..h {
                assert!((got[c] - qkv[2 * h + c]).abs() < 1e-6);
            }
        }
    }
}
