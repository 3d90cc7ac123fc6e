//! Attention of long query chunks computed as ggml's CPU flash attention computes them for
//! [`GGML_FA_TILE_Q`](super::GGML_FA_TILE_Q) queries or more (its tiled kernel): f32 queries,
//! keys and values widened from the f16 cache, keys in tiles of 64 from position 0; per tile,
//! each score an FMA chain over the head dimension times the scale, the tile's maximum and
//! `exp(x − max)` through ggml's vectorised `exp`, summed eight at a time in its lane order into
//! an f64 and added to the f32 running sum; the values accumulated by FMA chains in key order;
//! at the end the output scaled by `1/sum`. Per query row this is independent of how the
//! queries are chunked or tiled, so it gives llama.cpp's bits for any prefill chunking.

use candle_core::{DType, Device, Tensor};

use super::ggml_silu::ggml_expf;
use crate::Result;

/// Keys per tile (`GGML_FA_TILE_KV`).
const TILE_KV: usize = 64;

/// Grouped-query attention of one sequence without a sliding window, as ggml's tiled kernel
/// computes it. `q` `[heads, queries, dim]` (f32) at positions `query_start..`; `k`, `v`
/// `[kv_heads, keys, dim]` holding positions `0..keys` (f16 or f32 holding f16 values); each
/// score is multiplied by `scale`. CPU tensors only.
pub fn ggml_attention_tiled(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    query_start: usize,
    scale: f32,
) -> Result<Tensor> {
    let (heads, queries, dim) = q.dims3()?;
    let (kv_heads, n_keys, _) = k.dims3()?;
    super::attention::check_attention(heads, kv_heads, query_start, 0, None)?;
    let flat = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    };
    let (qs, ks, vs) = (flat(q)?, flat(k)?, flat(v)?);
    // Keys transposed per KV head, `[dim][padded keys]`, so a tile's scores are computed
    // across keys (as ggml's `simd_gemm` does, one FMA chain per score).
    let padded = n_keys.div_ceil(TILE_KV) * TILE_KV;
    let mut kt = vec![0f32; kv_heads * dim * padded];
    for h in 0..kv_heads {
        for j in 0..n_keys {
            for d in 0..dim {
                kt[(h * dim + d) * padded + j] = ks[(h * n_keys + j) * dim + d];
            }
        }
    }
    let group = heads / kv_heads;
    let mut out = vec![0f32; heads * queries * dim];
    crate::kernels::par_rows(&mut out, dim, |r, dst| {
        let (h, i) = (r / queries, r % queries);
        let kh = h / group;
        let visible = (query_start + i + 1).min(n_keys);
        row(
            &qs[r * dim..(r + 1) * dim],
            &kt[kh * dim * padded..(kh + 1) * dim * padded],
            &vs[kh * n_keys * dim..(kh + 1) * n_keys * dim],
            (visible, padded),
            scale,
            dst,
        );
    });
    Ok(Tensor::from_vec(out, (heads, queries, dim), &Device::Cpu)?)
}

/// One query row over the first `visible` keys (`kt`: `[dim][padded]`, `v`: `[keys][dim]`).
fn row(
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    (visible, padded): (usize, usize),
    scale: f32,
    out: &mut [f32],
) {
    let dim = q.len();
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
    out.fill(0.0);
    let mut kq = [0f32; TILE_KV];
    for t0 in (0..visible).step_by(TILE_KV) {
        let n = (visible - t0).min(TILE_KV);
        kq.fill(0.0);
        for (d, &qd) in q.iter().enumerate() {
            let col = &kt[d * padded + t0..d * padded + t0 + TILE_KV];
            for (s, &kd) in kq.iter_mut().zip(col) {
                *s = kd.mul_add(qd, *s);
            }
        }
        for s in kq.iter_mut() {
            *s *= scale;
        }
        // Keys after the query (and the padding) are masked.
        kq[n..].fill(f32::NEG_INFINITY);
        let tile_max = kq.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let new_max = max.max(tile_max);
        if new_max > max {
            let ms = (max - new_max).exp();
            for o in out.iter_mut() {
                *o *= ms;
            }
            sum *= ms;
        }
        max = new_max;
        let mut tile_sum = 0f64;
        for chunk in kq.chunks_exact_mut(8) {
            let mut lanes = [0f32; 8];
            for (l, s) in lanes.iter_mut().zip(chunk.iter_mut()) {
                *s = ggml_expf(*s - max);
                *l = *s;
            }
            tile_sum += f64::from(crate::kernels::scalar::hsum8(lanes));
        }
        sum = (f64::from(sum) + tile_sum) as f32;
        for (j, &p) in kq[..n].iter().enumerate() {
            let vj = &v[(t0 + j) * dim..(t0 + j + 1) * dim];
            for (o, &vd) in out.iter_mut().zip(vj) {
                *o = p.mul_add(vd, *o);
            }
        }
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for o in out.iter_mut() {
        *o *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::attention::naive_attention;

    #[test]
    fn long_chunks_match_exact_attention() -> Result<()> {
        let dev = Device::Cpu;
        let (keys, queries) = (150, 70);
        let q = Tensor::randn(0f32, 1., (4, queries, 32), &dev)?;
        let k = crate::layers::round_to_f16(&Tensor::randn(0f32, 1., (2, keys, 32), &dev)?)?;
        let v = crate::layers::round_to_f16(&Tensor::randn(0f32, 1., (2, keys, 32), &dev)?)?;
        let start = keys - queries;
        let scale = 1.0 / 32f32.sqrt();
        let a = ggml_attention_tiled(&q, &k, &v, start, scale)?;
        let b = naive_attention(&q, &k, &v, start, None, f64::from(scale))?;
        let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        // A query's row does not depend on the other queries of its chunk.
        let one = ggml_attention_tiled(&q.narrow(1, 5, 1)?, &k, &v, start + 5, scale)?;
        let all = ggml_attention_tiled(&q, &k, &v, start, scale)?;
        let d = (one - all.narrow(1, 5, 1)?)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert_eq!(d, 0.0);
        Ok(())
    }
}
