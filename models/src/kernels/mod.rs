//! Quantised matrix products on the CPU: `x · Wᵀ` for GGUF weights kept in their stored blocks
//! (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K).
//!
//! Activations are quantised once per product to 8 bits ([`act`]), exactly as ggml's x86 backend
//! quantises them; every weight row is then multiplied with all activation rows while its
//! blocks are in cache, eight rows per unpacked block ([`avx2`] where the build targets AVX2 and
//! FMA, [`avx512`] chosen at run time where the CPU also has AVX-512 with VNNI, else the
//! portable [`scalar`] kernels; all give the same bits). Weight rows are split
//! across the compute pool (candle's spinning barrier pool, which candle's own CPU operations
//! use too, sized by the engine configuration: see [`init_compute_pool`]).

pub mod act;
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
mod act_avx2;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx2;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx2_k;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx512;
pub mod format;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod half_groups;
pub mod packed;
pub mod packed32;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod packed32_avx2;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod packed_avx2;
mod par;
pub mod q4_1;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod q4_1_avx512;
pub mod scalar;

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{CpuStorage, Layout, Shape, Tensor};

pub use act::Acts;
pub use format::{ActFormat, RowOrder, WeightFormat};
pub use packed::PackedQ4K;
pub use packed32::Packed32;
pub(crate) use par::{SyncPtr, par_rows, par_rows_light};

use crate::{ModelError, Result};

/// Bytes of quantised activations multiplied against each weight row in one pass (L1-sized).
const ACT_GROUP_BYTES: usize = 16 * 1024;
/// Weight rows multiplied against one activation group before the next (L2-sized for the
/// widest rows here).
const WEIGHT_GROUP_ROWS: usize = 64;
/// Weight rows handed to the kernels at once.
const TILE_ROWS: usize = 4;

/// A set of quantised dot-product kernels; all give the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernels {
    /// The portable Rust kernels ([`scalar`]).
    Portable,
    /// AVX2 + FMA, the x86-64-v3 baseline the build targets.
    Avx2,
    /// AVX-512 F/BW/DQ/VL with VNNI, chosen at run time where the CPU has them.
    Avx512,
}

impl Kernels {
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512-vnni",
        }
    }

    /// Whether this build and CPU run these kernels.
    pub fn runs(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx2 => cfg!(all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            )),
            Self::Avx512 => avx512_runs(),
        }
    }

    /// Every set this build and CPU can run, slowest first.
    pub fn available() -> Vec<Kernels> {
        [Self::Portable, Self::Avx2, Self::Avx512]
            .into_iter()
            .filter(|k| k.runs())
            .collect()
    }

    /// `out[j] = w · acts[first + j]` with these kernels (the portable ones where this build or
    /// CPU lacks them).
    pub fn dot_rows(
        self,
        format: WeightFormat,
        w: &[u8],
        acts: &Acts,
        first: usize,
        out: &mut [f32],
    ) {
        match self {
            #[cfg(all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            ))]
            Self::Avx2 => avx2::dot_rows(format, w, acts, first, out),
            #[cfg(all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            ))]
            Self::Avx512 => avx512::dot_rows(format, w, acts, first, out),
            _ => scalar::dot_rows(format, w, acts, first, out),
        }
    }

    /// `out[i·len + j] = w_i · acts[first + j]` for the weight rows `w_i` that `w` holds back
    /// to back (`len = out.len() / rows`); the AVX-512 kernels share each activation load
    /// between several rows.
    pub fn dot_tile(
        self,
        format: WeightFormat,
        w: &[u8],
        acts: &Acts,
        first: usize,
        out: &mut [f32],
    ) {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        if self == Self::Avx512 && format != WeightFormat::Q4_1 {
            return avx512::dot_tile(format, w, acts, first, out);
        }
        if format == WeightFormat::Q4_1 && self != Self::Portable {
            return q4_1::dot_tile(self == Self::Avx512, w, acts, first, out);
        }
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        if self == Self::Avx2 {
            return avx2::dot_tile(format, w, acts, first, out);
        }
        let row_bytes = acts.blocks_per_row() * format.block_bytes();
        let rows = w.len().checked_div(row_bytes).unwrap_or(0);
        let len = out.len().checked_div(rows).unwrap_or(0);
        if len == 0 {
            return;
        }
        for (w, out) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(len)) {
            self.dot_rows(format, w, acts, first, out);
        }
    }
}

/// Whether this build has the AVX-512 kernels and this CPU runs them.
pub(crate) fn avx512_runs() -> bool {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    return avx512::available();
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    false
}

/// The kernels every product uses: the fastest this build and CPU run, or, where the
/// environment variable `NFAI_KERNELS` names an available set (`portable`, `avx2`,
/// `avx512-vnni`), that one (for comparing them on one machine).
pub fn kernels() -> Kernels {
    static CHOSEN: std::sync::LazyLock<Kernels> = std::sync::LazyLock::new(|| {
        let available = Kernels::available();
        let wanted = std::env::var("NFAI_KERNELS").ok();
        available
            .iter()
            .copied()
            .find(|k| wanted.as_deref() == Some(k.name()))
            .or_else(|| available.last().copied())
            .unwrap_or(Kernels::Portable)
    });
    *CHOSEN
}

/// The instruction set the f32 matrix products (the BERT encoder's GEMMs, candle's f32
/// matmuls) use on this CPU: the `gemm` crate picks its AVX-512 kernels at run time where the
/// CPU has AVX-512F, else its AVX2 + FMA ones.
pub fn f32_gemm_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return "avx2";
        }
    }
    "portable"
}

/// Checks that this CPU runs what the build was compiled for: a binary built for x86-64-v3
/// (the default on x86-64) needs AVX2, FMA and F16C, and fails with this message, not an
/// illegal instruction, where they are missing.
pub fn check_cpu() -> std::result::Result<(), String> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        let missing: Vec<&str> = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
        ]
        .into_iter()
        .filter_map(|(name, has)| (!has).then_some(name))
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "this build needs an x86-64-v3 CPU (AVX2, FMA, F16C); this one lacks {}. \
                 Build for it with RUSTFLAGS=\"-C target-cpu=x86-64\" to use the portable kernels.",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// Sizes the compute pools every native model shares, so that an LLM and an embedder loaded
/// together never run more compute threads than `threads`: candle's barrier pool (the
/// quantised products here and candle's element-wise operations; one job at a time) and
/// rayon's global pool (candle's f32 matrix products). Call once at start, before any other
/// thread exists; returns false when a pool was already started.
pub fn init_compute_pool(threads: usize) -> bool {
    let threads = threads.max(1).to_string();
    // SAFETY: called at start, while the process has a single thread.
    unsafe {
        std::env::set_var("CANDLE_NUM_THREADS", &threads);
        std::env::set_var("RAYON_NUM_THREADS", &threads);
    }
    let rayon = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("nfai-gemm-{i}"))
        .build_global()
        .is_ok();
    candle_core::utils::barrier_pool();
    rayon
}
/// `out[j] = w · acts[first + j]` for one weight row `w` with [`kernels`].
pub fn dot_rows(format: WeightFormat, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    kernels().dot_rows(format, w, acts, first, out);
}

/// A quantised `[rows, cols]` weight on the CPU, multiplied by this module's kernels. The
/// blocks stay in the candle tensor they were loaded into (shared, e.g. with an embedding),
/// except Q4_1, Q5_0 and Q4_K under the SIMD kernels, which are repacked ([`packed32`],
/// [`packed`]) and the tensor let go where nothing else holds it.
#[derive(Debug, Clone)]
pub struct QMatrix {
    weights: Weights,
    format: WeightFormat,
    rows: usize,
    cols: usize,
}

#[derive(Debug, Clone)]
enum Weights {
    Blocks(Arc<QTensor>),
    Packed(Arc<PackedQ4K>),
    Packed32(Arc<Packed32>),
}

/// One matrix of a [`QMatrix::matmul_many`] job: its weights, which of the job's quantised
/// activations it multiplies, and where its units start in the job's unit range.
struct Job<'a> {
    q: &'a QMatrix,
    acts: usize,
    weights: Prepared<'a>,
    first: usize,
}

enum Prepared<'a> {
    Blocks(std::borrow::Cow<'a, [u8]>),
    Packed(&'a PackedQ4K),
    Packed32(&'a Packed32),
}

impl QMatrix {
    /// `None` when the tensor is not on the CPU, not 2-D, in a format without a kernel here, or
    /// its rows are not whole blocks.
    pub fn new(tensor: Arc<QTensor>) -> Option<Self> {
        Self::with_repack(tensor, true)
    }

    /// [`Self::new`], repacking the weights for the SIMD kernels only where `repack` is set
    /// (a tensor another user also holds, such as a tied embedding, is better left as it is
    /// than held twice).
    pub fn with_repack(tensor: Arc<QTensor>, repack: bool) -> Option<Self> {
        let format = WeightFormat::from_ggml(tensor.dtype())?;
        let (rows, cols) = tensor.shape().dims2().ok()?;
        if !tensor.device().is_cpu() || !cols.is_multiple_of(format.block_len()) {
            return None;
        }
        let mut m = Self {
            weights: Weights::Blocks(tensor),
            format,
            rows,
            cols,
        };
        if m.data().ok()?.len() != rows * m.row_bytes() {
            return None;
        }
        let kernels = kernels();
        if repack && kernels != Kernels::Portable {
            let packed = match format {
                WeightFormat::Q4K => PackedQ4K::pack(kernels, &m.data().ok()?, rows, cols)
                    .map(|p| Weights::Packed(Arc::new(p))),
                WeightFormat::Q4_1 | WeightFormat::Q5_0 => {
                    Packed32::pack(kernels, format, &m.data().ok()?, rows, cols)
                        .map(|p| Weights::Packed32(Arc::new(p)))
                }
                _ => None,
            };
            if let Some(packed) = packed {
                m.weights = packed;
            }
        }
        Some(m)
    }

    /// Whether the weights are held repacked for the SIMD kernels.
    pub fn is_packed(&self) -> bool {
        !matches!(self.weights, Weights::Blocks(_))
    }

    pub fn format(&self) -> WeightFormat {
        self.format
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.format.block_len() * self.format.block_bytes()
    }

    fn data(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match &self.weights {
            Weights::Blocks(tensor) => Ok(tensor.data()?),
            Weights::Packed(_) | Weights::Packed32(_) => Err(ModelError::Format(
                "repacked weights have no GGUF blocks".into(),
            )),
        }
    }

    /// `x · Wᵀ` for `x` of `m` rows of `cols` values; the result is `m × rows`, row-major.
    pub fn matmul(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        self.matmul_ordered(x, m, &[])
    }

    /// [`Self::matmul`] with each row's K-quant float order (see [`RowOrder`]).
    pub fn matmul_ordered(&self, x: &[f32], m: usize, orders: &[RowOrder]) -> Result<Vec<f32>> {
        Self::matmul_many(&[self], x, m, orders)?
            .pop()
            .ok_or_else(|| ModelError::Format("matmul without a result".into()))
    }

    /// `x · Wᵢᵀ` for every matrix `Wᵢ` of `mats` (all `cols` wide) in one job of the compute
    /// pool: the activations are quantised once per activation format, and the pool's threads
    /// meet at one barrier for all the products instead of one each (the Q/K/V projections and
    /// the gate and up projections of a decoder layer share their input). Each result is what
    /// [`Self::matmul_ordered`] gives for its matrix, bit for bit.
    pub fn matmul_many(
        mats: &[&QMatrix],
        x: &[f32],
        m: usize,
        orders: &[RowOrder],
    ) -> Result<Vec<Vec<f32>>> {
        let mut acts: Vec<Acts> = Vec::with_capacity(mats.len());
        // Per quantised activation set, the Q5_0 lanes' starting sums ([`Packed32::offsets`]),
        // computed once for every packed matrix that multiplies it.
        let mut offsets: Vec<Option<Vec<i32>>> = Vec::with_capacity(mats.len());
        let mut jobs = Vec::with_capacity(mats.len());
        let mut total = 0;
        for q in mats {
            if x.len() != m * q.cols {
                return Err(ModelError::Format(format!(
                    "matmul input of {} values is not {m} rows of {}",
                    x.len(),
                    q.cols
                )));
            }
            let format = q.format.act_format();
            let a = match acts.iter().position(|a| a.format == format) {
                Some(a) => a,
                None => {
                    let mut a = Acts::quantize(format, x, m, q.cols);
                    a.orders = orders.to_vec();
                    acts.push(a);
                    offsets.push(None);
                    acts.len() - 1
                }
            };
            let (weights, units) = match &q.weights {
                Weights::Packed(packed) => (Prepared::Packed(packed), q.rows / packed::GROUP),
                Weights::Packed32(packed) => {
                    if offsets[a].is_none() {
                        offsets[a] = Some(packed.offsets(&acts[a]));
                    }
                    (Prepared::Packed32(packed), q.rows / packed32::GROUP)
                }
                Weights::Blocks(_) => (Prepared::Blocks(q.data()?), q.rows),
            };
            jobs.push(Job {
                q,
                acts: a,
                weights,
                first: total,
            });
            total += units;
        }
        let mut ys: Vec<Vec<f32>> = mats.iter().map(|q| vec![0f32; m * q.rows]).collect();
        let outs: Vec<SyncPtr<f32>> = ys.iter_mut().map(|y| SyncPtr(y.as_mut_ptr())).collect();
        let ends: Vec<usize> = jobs
            .iter()
            .skip(1)
            .map(|j| j.first)
            .chain([total])
            .collect();
        // Chunks of units (weight rows, or groups of rows for repacked weights) go to the
        // compute pool's threads, which spin between jobs; a chunk may span two matrices.
        candle_core::utils::barrier_pool().execute_chunked(total, |range| {
            for ((job, out), &end) in jobs.iter().zip(&outs).zip(&ends) {
                let (lo, hi) = (range.start.max(job.first), range.end.min(end));
                if lo >= hi {
                    continue;
                }
                let units = lo - job.first..hi - job.first;
                let acts = &acts[job.acts];
                match &job.weights {
                    // SAFETY: each thread writes only the columns of its own groups.
                    Prepared::Packed(packed) => unsafe {
                        packed.matmul_groups(acts, units, out.get())
                    },
                    // SAFETY: as above.
                    Prepared::Packed32(packed) => unsafe {
                        let offsets = offsets[job.acts].as_deref().unwrap_or_default();
                        packed.matmul_groups(acts, offsets, units, out.get())
                    },
                    Prepared::Blocks(data) => job.q.block_rows(data, acts, m, units, out),
                }
            }
        });
        Ok(ys)
    }

    /// Weight rows `rows` of `data` (this matrix's blocks) times every row of `acts`, into the
    /// columns `rows` of `out` (`m × self.rows`), which no other thread writes meanwhile.
    fn block_rows(
        &self,
        data: &[u8],
        acts: &Acts,
        m: usize,
        rows: std::ops::Range<usize>,
        out: &SyncPtr<f32>,
    ) {
        let row_bytes = self.row_bytes();
        let n = self.rows;
        // Within a chunk, groups of activation rows small enough to stay in L1 meet groups of
        // weight rows small enough to stay in L2.
        let act_group = (ACT_GROUP_BYTES / self.cols).clamp(8, 64) / 8 * 8;
        let kernels = kernels();
        let mut col = vec![0f32; act_group.min(m) * TILE_ROWS];
        // One group's results, activation-row major, so that each row of `y` gets a
        // contiguous run instead of one strided element per weight row.
        let mut tile = vec![0f32; act_group.min(m) * WEIGHT_GROUP_ROWS];
        let mut w0 = rows.start;
        while w0 < rows.end {
            let w1 = (w0 + WEIGHT_GROUP_ROWS).min(rows.end);
            let width = w1 - w0;
            for a0 in (0..m).step_by(act_group) {
                let a1 = (a0 + act_group).min(m);
                let len = a1 - a0;
                for r in (w0..w1).step_by(TILE_ROWS) {
                    let k = (w1 - r).min(TILE_ROWS);
                    let w = &data[r * row_bytes..(r + k) * row_bytes];
                    kernels.dot_tile(self.format, w, acts, a0, &mut col[..k * len]);
                    for (i, res) in col[..k * len].chunks_exact(len).enumerate() {
                        for (j, &v) in res.iter().enumerate() {
                            tile[j * width + r + i - w0] = v;
                        }
                    }
                }
                for (j, i) in (a0..a1).enumerate() {
                    // SAFETY: `i * n + w0 .. i * n + w1` lies in `y` (m·n long), and the
                    // weight rows `w0..w1` belong to this chunk alone, so no other thread
                    // writes there; `y` outlives the pool job.
                    let dst = unsafe { out.slice(i * n + w0, width) };
                    dst.copy_from_slice(&tile[j * width..(j + 1) * width]);
                }
            }
            w0 = w1;
        }
    }

    /// `x · Wᵀ` for a contiguous f32 CPU tensor `x` of shape `[.., cols]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_ordered(x, &[])
    }

    /// [`Self::forward`] with each row's K-quant float order (see [`RowOrder`]).
    pub fn forward_ordered(&self, x: &Tensor, orders: &[RowOrder]) -> Result<Tensor> {
        Ok(x.contiguous()?.apply_op1_no_bwd(&MatMulOp(self, orders))?)
    }
}

struct MatMulOp<'a>(&'a QMatrix, &'a [RowOrder]);

impl candle_core::CustomOp1 for MatMulOp<'_> {
    fn name(&self) -> &'static str {
        "nfai-qmatmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("nfai-qmatmul expects f32 activations")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("nfai-qmatmul expects contiguous activations")
        };
        let mut dims = layout.shape().dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == self.0.cols => *last = self.0.rows,
            _ => candle_core::bail!(
                "nfai-qmatmul: input {:?} does not end in {}",
                layout.shape(),
                self.0.cols
            ),
        }
        let x = &data[start..end];
        let m = x.len() / self.0.cols;
        let y = self
            .0
            .matmul_ordered(x, m, self.1)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests;
