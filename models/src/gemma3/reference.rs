//! A naive, element-by-element Gemma 3 forward pass over a whole sequence (f64, no cache, no
//! tensors), used by the tests as an independent reference for the batched implementation.
#![allow(
    clippy::needless_range_loop,
    reason = "index loops mirror the formulas they check"
)]

use candle_core::Device;

use super::config::Gemma3Config;
use crate::Result;
use crate::gguf::GgufFile;

struct Mat {
    cols: usize,
    data: Vec<f64>,
}

impl Mat {
    fn load(g: &GgufFile, name: &str) -> Result<Self> {
        let t = g.tensor(name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
        let cols = *t.dims().last().unwrap_or(&1);
        let data = t
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect();
        Ok(Self { cols, data })
    }

    fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// `W · x` for `W` `[rows, cols]`.
    fn apply(&self, x: &[f64]) -> Vec<f64> {
        (0..self.data.len() / self.cols)
            .map(|r| self.row(r).iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    }
}

fn rms_norm(x: &[f64], w: &Mat, eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(&w.data).map(|(v, w)| v * r * w).collect()
}

/// ggml's GELU (f16 table) and f16 rounding, which the model reproduces on purpose.
fn gelu(x: f64) -> f64 {
    f64::from(crate::layers::ggml::ggml_gelu(x as f32))
}

fn f16(x: f64) -> f64 {
    f64::from(half::f16::from_f64(x).to_f32())
}

/// NeoX rotation of one head vector at position `pos`.
fn rope(x: &mut [f64], pos: usize, base: f64, scale: f64) {
    let d = x.len();
    let half = d / 2;
    for i in 0..half {
        let theta = pos as f64 * scale * base.powf(-2.0 * i as f64 / d as f64);
        let (s, c) = theta.sin_cos();
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * c - b * s;
        x[i + half] = a * s + b * c;
    }
}

/// Logits of the last position of `tokens`, computed from scratch.
pub(super) fn last_logits(g: &GgufFile, cfg: &Gemma3Config, tokens: &[u32]) -> Result<Vec<f32>> {
    let eps = f64::from(cfg.eps);
    let (hd, nh, nkv) = (cfg.head_dim, cfg.heads, cfg.kv_heads);
    let embed = Mat::load(g, "token_embd.weight")?;
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| {
            embed
                .row(t as usize)
                .iter()
                .map(|v| v * (cfg.hidden as f64).sqrt())
                .collect()
        })
        .collect();
    let n = tokens.len();
    for l in 0..cfg.layers {
        let w = |t: &str| Mat::load(g, &format!("blk.{l}.{t}.weight"));
        let local = cfg.local_layers[l];
        let (base, scale) = if local {
            (f64::from(cfg.rope_base_local), 1.0)
        } else {
            (
                f64::from(cfg.rope_base_global),
                f64::from(cfg.rope_scale_global),
            )
        };
        let window = if local { cfg.sliding_window } else { None };
        let (qn, kn) = (w("attn_q_norm")?, w("attn_k_norm")?);
        // Queries are scaled, and queries, keys and values rounded to f16, as llama.cpp does.
        let heads_of = |v: Vec<f64>, count: usize, norm: &Mat, pos: usize, rot: bool, mul: f64| {
            (0..count)
                .map(|h| {
                    let mut head = v[h * hd..(h + 1) * hd].to_vec();
                    if rot {
                        head = rms_norm(&head, norm, eps);
                        rope(&mut head, pos, base, scale);
                    }
                    head.iter().map(|x| f16(x * mul)).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        let (wq, wk, wv) = (w("attn_q")?, w("attn_k")?, w("attn_v")?);
        let mut q = Vec::new();
        let mut k = Vec::new();
        let mut v = Vec::new();
        for (p, xp) in x.iter().enumerate() {
            let h = rms_norm(xp, &w("attn_norm")?, eps);
            q.push(heads_of(wq.apply(&h), nh, &qn, p, true, cfg.attn_scale));
            k.push(heads_of(wk.apply(&h), nkv, &kn, p, true, 1.0));
            v.push(heads_of(wv.apply(&h), nkv, &kn, p, false, 1.0));
        }
        let (wo, pan) = (w("attn_output")?, w("post_attention_norm")?);
        let (fnorm, gate, up, down, pfn) = (
            w("ffn_norm")?,
            w("ffn_gate")?,
            w("ffn_up")?,
            w("ffn_down")?,
            w("post_ffw_norm")?,
        );
        for p in 0..n {
            let mut concat = Vec::with_capacity(nh * hd);
            for h in 0..nh {
                let kh = h / (nh / nkv);
                let vis: Vec<usize> = (0..=p)
                    .filter(|&j| window.is_none_or(|wd| j + wd > p))
                    .collect();
                let s: Vec<f64> = vis
                    .iter()
                    .map(|&j| {
                        q[p][h]
                            .iter()
                            .zip(&k[j][kh])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    concat.push(
                        vis.iter()
                            .zip(&e)
                            .map(|(&j, wt)| wt / z * v[j][kh][d])
                            .sum(),
                    );
                }
            }
            let o = rms_norm(&wo.apply(&concat), &pan, eps);
            let xa: Vec<f64> = x[p].iter().zip(&o).map(|(a, b)| a + b).collect();
            let h = rms_norm(&xa, &fnorm, eps);
            let act: Vec<f64> = gate
                .apply(&h)
                .iter()
                .zip(up.apply(&h))
                .map(|(gv, uv)| gelu(*gv) * uv)
                .collect();
            let f = rms_norm(&down.apply(&act), &pfn, eps);
            x[p] = xa.iter().zip(&f).map(|(a, b)| a + b).collect();
        }
    }
    let last = x.last().cloned().unwrap_or_default();
    let h = rms_norm(&last, &Mat::load(g, "output_norm.weight")?, eps);
    Ok(embed.apply(&h).into_iter().map(|v| v as f32).collect())
}
