//! The packed layout of a ragged batch and masked grouped-query attention over one sequence's
//! keys and values (its cache plus its new tokens), with an optional sliding window.

use candle_core::{DType, Device, Tensor};

use crate::lm::BatchEntry;
use crate::{ModelError, Result};

/// Where one entry's new tokens sit in the packed activations.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// First row of this entry in the packed `[total_tokens, …]` activations.
    pub offset: usize,
    /// New tokens of this entry.
    pub len: usize,
    /// Positions already in this entry's cache (the first new token's position).
    pub past: usize,
}

/// The packed layout of a ragged batch, validated against the model's limits.
#[derive(Debug)]
pub struct BatchLayout {
    pub spans: Vec<Span>,
    pub token_ids: Vec<u32>,
    pub positions: Vec<u32>,
}

impl BatchLayout {
    /// Checks every entry (non-empty, ids below `vocab_size`, positions within
    /// `context_length`, a cache of `n_layers` layers) and packs their tokens.
    pub fn new(
        entries: &[BatchEntry<'_>],
        vocab_size: usize,
        context_length: usize,
        n_layers: usize,
    ) -> Result<Self> {
        if entries.is_empty() {
            return Err(ModelError::Input("empty batch".into()));
        }
        let mut spans = Vec::with_capacity(entries.len());
        let mut token_ids = Vec::new();
        let mut positions = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.tokens.is_empty() {
                return Err(ModelError::Input(format!("batch entry {i} has no tokens")));
            }
            if let Some(bad) = e.tokens.iter().find(|&&t| t as usize >= vocab_size) {
                return Err(ModelError::Input(format!(
                    "batch entry {i}: token id {bad} is outside the vocabulary of {vocab_size}"
                )));
            }
            if e.cache.n_layers() != n_layers {
                return Err(ModelError::Input(format!(
                    "batch entry {i}: cache has {} layers, the model {n_layers}",
                    e.cache.n_layers()
                )));
            }
            let past = e.cache.len();
            let end = past + e.tokens.len();
            if end > context_length {
                return Err(ModelError::Input(format!(
                    "batch entry {i}: positions up to {end} exceed the context length {context_length}"
                )));
            }
            spans.push(Span {
                offset: token_ids.len(),
                len: e.tokens.len(),
                past,
            });
            token_ids.extend_from_slice(e.tokens);
            positions.extend((past..end).map(|p| p as u32));
        }
        Ok(Self {
            spans,
            token_ids,
            positions,
        })
    }

    pub fn total_tokens(&self) -> usize {
        self.token_ids.len()
    }

    /// Row index of each entry's last new token, as a U32 tensor.
    pub fn last_rows(&self, device: &Device) -> Result<Tensor> {
        let rows: Vec<u32> = self
            .spans
            .iter()
            .map(|s| (s.offset + s.len - 1) as u32)
            .collect();
        Ok(Tensor::new(rows, device)?)
    }
}

/// Additive mask (`0` or `-inf`) for `queries` queries at positions `query_start..` over keys at
/// positions `key_start..key_start + keys`: a key is visible when it is not after the query and,
/// with a sliding `window`, when `key > query - window`. `None` when every key is visible.
pub fn attention_mask(
    query_start: usize,
    queries: usize,
    key_start: usize,
    keys: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let visible = |q: usize, k: usize| k <= q && window.is_none_or(|w| k + w > q);
    let all_visible = (0..queries).all(|i| {
        let q = query_start + i;
        visible(q, key_start) && visible(q, key_start + keys - 1)
    });
    if all_visible {
        return Ok(None);
    }
    let mut mask = Vec::with_capacity(queries * keys);
    for i in 0..queries {
        let q = query_start + i;
        mask.extend((0..keys).map(|j| {
            if visible(q, key_start + j) {
                0f32
            } else {
                f32::NEG_INFINITY
            }
        }));
    }
    Ok(Some(Tensor::from_vec(mask, (queries, keys), device)?))
}

/// Checks that `heads` query heads can share `kv_heads` KV heads and that a cache holding keys
/// from `key_offset` covers what the query at `query_start` sees; returns the first key it sees.
pub(crate) fn check_attention(
    heads: usize,
    kv_heads: usize,
    query_start: usize,
    key_offset: usize,
    window: Option<usize>,
) -> Result<usize> {
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(ModelError::Format(format!(
            "{heads} query heads cannot share {kv_heads} KV heads"
        )));
    }
    let needed = window.map_or(0, |w| (query_start + 1).saturating_sub(w));
    if key_offset > needed {
        return Err(ModelError::Input(format!(
            "attention at position {query_start} needs keys from {needed}, the cache holds them from {key_offset}"
        )));
    }
    Ok(needed)
}

/// Scaled dot-product attention of one sequence with grouped KV heads.
///
/// `q`: `[heads, queries, dim]` at positions `query_start..`; `k`, `v`: `[kv_heads, keys, dim]`
/// holding positions `key_offset..key_offset + keys` (the cache plus the new tokens; a
/// sliding-window cache starts after 0). With a sliding `window`, keys no query can see are
/// skipped before the matmul. Returns `[heads, queries, dim]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    query_start: usize,
    key_offset: usize,
    window: Option<usize>,
    scale: f64,
) -> Result<Tensor> {
    let (heads, queries, dim) = q.dims3()?;
    let (kv_heads, keys, _) = k.dims3()?;
    let needed = check_attention(heads, kv_heads, query_start, key_offset, window)?;
    let key_start = needed.max(key_offset);
    let skip = key_start - key_offset;
    let (k, v) = if skip > 0 {
        (
            k.narrow(1, skip, keys - skip)?,
            v.narrow(1, skip, keys - skip)?,
        )
    } else {
        (k.clone(), v.clone())
    };
    let keys = keys - skip;
    let group = heads / kv_heads;
    // Query heads of one KV head are adjacent, so each group becomes `group * queries` rows.
    let q = if scale == 1.0 {
        q.contiguous()?
    } else {
        (q.contiguous()? * scale)?
    };
    let q = q.reshape((kv_heads, group * queries, dim))?;
    let scores = q.matmul(&k.t()?)?;
    let scores = match attention_mask(query_start, queries, key_start, keys, window, q.device())? {
        Some(mask) => scores
            .reshape((kv_heads, group, queries, keys))?
            .broadcast_add(&mask)?
            .reshape((kv_heads, group * queries, keys))?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?;
    let out = probs.to_dtype(v.dtype())?.matmul(&v)?;
    Ok(out.reshape((heads, queries, dim))?)
}

/// Attention written out element by element, for tests: `q` `[heads, queries, dim]`, `k`/`v`
/// `[kv_heads, keys, dim]` at positions `0..keys`.
#[cfg(test)]
pub(crate) fn naive_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    query_start: usize,
    window: Option<usize>,
    scale: f64,
) -> Result<Tensor> {
    let (heads, queries, dim) = q.dims3()?;
    let (kv_heads, keys, _) = k.dims3()?;
    let q = q.to_vec3::<f32>()?;
    let k = k.to_vec3::<f32>()?;
    let v = v.to_vec3::<f32>()?;
    let mut out = vec![0f32; heads * queries * dim];
    for h in 0..heads {
        let kh = h / (heads / kv_heads);
        for i in 0..queries {
            let qp = query_start + i;
            let vis: Vec<usize> = (0..keys)
                .filter(|&j| j <= qp && window.is_none_or(|w| j + w > qp))
                .collect();
            let s: Vec<f64> = vis
                .iter()
                .map(|&j| {
                    (0..dim)
                        .map(|d| f64::from(q[h][i][d]) * f64::from(k[kh][j][d]))
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..dim {
                let acc: f64 = vis
                    .iter()
                    .zip(&e)
                    .map(|(&j, w)| w / z * f64::from(v[kh][j][d]))
                    .sum();
                out[(h * queries + i) * dim + d] = acc as f32;
            }
        }
    }
    Ok(Tensor::from_vec(out, (heads, queries, dim), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    }

    #[test]
    fn attention_matches_naive_with_window_and_gqa() -> Result<()> {
        let dev = Device::Cpu;
        let keys = 11;
        for (queries, window) in [
            (1, None),
            (1, Some(4)),
            (5, None),
            (5, Some(3)),
            (11, Some(4)),
        ] {
            let q = Tensor::randn(0f32, 1., (4, queries, 8), &dev)?;
            let k = Tensor::randn(0f32, 1., (2, keys, 8), &dev)?;
            let v = Tensor::randn(0f32, 1., (2, keys, 8), &dev)?;
            let start = keys - queries;
            let a = attention(&q, &k, &v, start, 0, window, 0.3)?;
            let b = naive_attention(&q, &k, &v, start, window, 0.3)?;
            assert!(
                max_diff(&a, &b)? < 1e-5,
                "queries {queries} window {window:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn mask_skipped_when_everything_is_visible() -> Result<()> {
        let dev = Device::Cpu;
        assert!(attention_mask(9, 1, 0, 10, None, &dev)?.is_none());
        assert!(attention_mask(9, 1, 6, 4, Some(4), &dev)?.is_none());
        let m = attention_mask(2, 2, 0, 4, Some(2), &dev)?
            .ok_or_else(|| ModelError::Input("mask expected".into()))?
            .to_vec2::<f32>()?;
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![vec![inf, 0., 0., inf], vec![inf, inf, 0., 0.]]);
        Ok(())
    }
}
