//! The BERT encoder on the CPU without padding: the sequences of a pass are packed into one
//! `[tokens, hidden]` matrix, every linear layer is a set of GEMM tiles whose output starts as
//! its bias (plus the residual) and gets its activation while still in cache, and attention
//! runs per sequence and head over that sequence's own keys only.
//!
//! All work goes to one compute pool (candle's barrier pool, the one the quantised kernels and
//! candle's element-wise operations use): each GEMM is cut into tiles of rows × output columns
//! and each tile runs single-threaded. Running candle's matmul instead puts rayon's threads
//! beside the barrier pool's spinning ones on the same cores.

use candle_core::Tensor;

use super::Pooling;
use super::attention::{Span, attention};
use super::encoder::{Activation, Encoder, LayerNorm, Linear};
use super::linear::DenseLinear;
use super::math;
use crate::Result;
use crate::kernels::par_rows;

/// Lower bound of the norm divided by in L2 normalisation (`torch.nn.functional.normalize`).
const NORM_EPS: f32 = 1e-12;

struct CpuNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl CpuNorm {
    fn new(l: &LayerNorm) -> Result<Self> {
        Ok(Self {
            weight: l.weight.to_vec1()?,
            bias: l.bias.to_vec1()?,
            eps: l.eps,
        })
    }

    fn forward(&self, xs: &mut [f32]) {
        par_rows(xs, self.weight.len(), |_, row| {
            math::layer_norm(row, &self.weight, &self.bias, self.eps)
        });
    }
}

struct CpuLayer {
    qkv: DenseLinear,
    attn_out: DenseLinear,
    attn_norm: CpuNorm,
    intermediate: DenseLinear,
    output: DenseLinear,
    out_norm: CpuNorm,
}

/// The encoder's weights as plain row-major f32 arrays.
pub(super) struct CpuEncoder {
    word_embeddings: Vec<f32>,
    position_type_embeddings: Vec<f32>,
    embed_norm: CpuNorm,
    layers: Vec<CpuLayer>,
    heads: usize,
    hidden: usize,
    activation: Activation,
    pooling: Pooling,
}

impl CpuEncoder {
    /// Copies the weights of a CPU encoder out of its tensors; `use_bf16` holds the linear
    /// layers' weights in reduced precision where [`DenseLinear::new`] allows it (bf16 where
    /// [`super::bf16_gemm`] holds).
    pub(super) fn new(enc: &Encoder, use_bf16: bool) -> Result<Self> {
        let layers = enc
            .layers
            .iter()
            .map(|l| {
                Ok(CpuLayer {
                    qkv: dense(&l.qkv, use_bf16)?,
                    attn_out: dense(&l.attn_out, use_bf16)?,
                    attn_norm: CpuNorm::new(&l.attn_norm)?,
                    intermediate: dense(&l.intermediate, use_bf16)?,
                    output: dense(&l.output, use_bf16)?,
                    out_norm: CpuNorm::new(&l.out_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings: flat(&enc.word_embeddings)?,
            position_type_embeddings: flat(&enc.position_type_embeddings)?,
            embed_norm: CpuNorm::new(&enc.embed_norm)?,
            layers,
            heads: enc.heads,
            hidden: enc.hidden,
            activation: enc.activation,
            pooling: enc.pooling,
        })
    }

    /// Pooled, L2-normalised embeddings of `seqs` (validated by the caller: non-empty,
    /// in-vocabulary, within the position table).
    pub(super) fn embed(&self, seqs: &[&[u32]]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(seqs.len());
        let mut tokens = 0;
        for s in seqs {
            spans.push(Span {
                start: tokens,
                len: s.len(),
            });
            tokens += s.len();
        }
        let mut xs = vec![0f32; tokens * h];
        for (s, span) in seqs.iter().zip(&spans) {
            for (p, &id) in s.iter().enumerate() {
                let row = &mut xs[(span.start + p) * h..][..h];
                let word = &self.word_embeddings[id as usize * h..][..h];
                let pos = &self.position_type_embeddings[p * h..][..h];
                for ((x, w), q) in row.iter_mut().zip(word).zip(pos) {
                    *x = w + q;
                }
            }
        }
        self.embed_norm.forward(&mut xs);
        for layer in &self.layers {
            xs = self.layer(layer, &xs, tokens, &spans);
        }
        spans.iter().map(|&span| self.pool(&xs, span)).collect()
    }

    fn layer(&self, layer: &CpuLayer, xs: &[f32], tokens: usize, spans: &[Span]) -> Vec<f32> {
        let qkv = layer.qkv.forward(xs, tokens, None, None);
        let context = attention(&qkv, tokens, spans, self.hidden, self.heads);
        let mut attended = layer.attn_out.forward(&context, tokens, Some(xs), None);
        layer.attn_norm.forward(&mut attended);
        let inner = layer
            .intermediate
            .forward(&attended, tokens, None, Some(self.activation));
        let mut out = layer.output.forward(&inner, tokens, Some(&attended), None);
        layer.out_norm.forward(&mut out);
        out
    }

    /// The pooled, unit-length vector of one sequence's rows.
    fn pool(&self, xs: &[f32], span: Span) -> Vec<f32> {
        let h = self.hidden;
        let rows = xs[span.start * h..(span.start + span.len) * h].chunks_exact(h);
        let mut v = match self.pooling {
            Pooling::Cls => xs[span.start * h..][..h].to_vec(),
            Pooling::Max => rows.fold(vec![f32::NEG_INFINITY; h], |mut acc, r| {
                acc.iter_mut().zip(r).for_each(|(a, x)| *a = a.max(*x));
                acc
            }),
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let mut sum = vec![0f32; h];
                rows.for_each(|r| sum.iter_mut().zip(r).for_each(|(a, x)| *a += x));
                let n = span.len as f32;
                let div = if self.pooling == Pooling::Mean {
                    n
                } else {
                    n.sqrt()
                };
                sum.iter_mut().for_each(|a| *a /= div);
                sum
            }
        };
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(NORM_EPS);
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    /// Whether the linear layers hold reduced-precision weights (bf16 or 8 bits).
    pub(super) fn reduced(&self) -> bool {
        self.layers.iter().any(|l| {
            [&l.qkv, &l.attn_out, &l.intermediate, &l.output]
                .iter()
                .any(|lin| lin.is_reduced())
        })
    }

    /// Bytes of the weights held.
    pub(super) fn bytes(&self) -> usize {
        let norm = |l: &CpuNorm| 4 * (l.weight.len() + l.bias.len());
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.qkv.bytes()
                    + l.attn_out.bytes()
                    + norm(&l.attn_norm)
                    + l.intermediate.bytes()
                    + l.output.bytes()
                    + norm(&l.out_norm)
            })
            .sum();
        4 * (self.word_embeddings.len() + self.position_type_embeddings.len())
            + norm(&self.embed_norm)
            + layers
    }
}

/// A tensor's values in row-major order.
fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1()?)
}

/// The CPU form of `l`, in reduced precision when `use_bf16` is set and [`DenseLinear::new`]
/// allows it.
fn dense(l: &Linear, use_bf16: bool) -> Result<DenseLinear> {
    let (k, n) = l.weight_t.dims2()?;
    Ok(DenseLinear::new(
        flat(&l.weight_t)?,
        k,
        n,
        l.bias.to_vec1()?,
        use_bf16,
    ))
}
