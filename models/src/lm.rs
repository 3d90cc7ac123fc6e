//! The interface every causal language model implements, and the per-sequence KV cache.
//!
//! A model is immutable once loaded and shared between threads; all per-sequence state lives in
//! [`SeqKvCache`], which the engine owns. One call to [`CausalLm::forward`] runs a ragged batch:
//! each entry brings its own new tokens (one for decode, many for prefill or a continued prompt)
//! and its own cache, and the model appends the new keys and values to that cache.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// Static facts about a loaded language model that the engine and the router need.
#[derive(Debug, Clone)]
pub struct LmInfo {
    /// Architecture name as found in the file (`gemma3`, …).
    pub architecture: String,
    /// Positions this instance can attend to (the configured context, capped by the model's).
    pub context_length: usize,
    pub vocab_size: usize,
    /// Token ids that end generation (end of sequence, end of turn).
    pub eos_token_ids: Vec<u32>,
    /// Bytes of KV cache one position of one sequence takes.
    pub kv_bytes_per_token: usize,
}

/// One sequence in a batched forward pass.
pub struct BatchEntry<'a> {
    /// Tokens to append, at positions `cache.len()..cache.len() + tokens.len()`. Never empty.
    pub tokens: &'a [u32],
    /// This sequence's cache; the forward pass appends to it.
    pub cache: &'a mut SeqKvCache,
}

/// A causal LM with a batched forward pass over sequences of different lengths and positions.
pub trait CausalLm: Send + Sync {
    fn info(&self) -> &LmInfo;

    /// An empty cache for a new sequence.
    fn new_cache(&self) -> SeqKvCache;

    /// Runs the new tokens of every entry and returns the logits of the last new token of each
    /// entry, as an F32 tensor of shape `[entries.len(), vocab_size]`.
    fn forward(&self, entries: &mut [BatchEntry<'_>]) -> Result<Tensor>;
}

/// Keys and values of one sequence for every layer, stored as `[kv_heads, capacity, head_dim]`
/// and grown by doubling, so appending one token is amortised O(1).
///
/// A sliding-window layer keeps only the positions a later query can still see (the last
/// `window - 1` before the new tokens): when its buffer is full it moves those to the front
/// instead of growing, so its memory stays about `window + chunk` positions however long the
/// sequence gets.
#[derive(Debug)]
pub struct SeqKvCache {
    layers: Vec<LayerKv>,
    len: usize,
}

#[derive(Debug)]
struct LayerKv {
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// Keys a query at position `p` sees are those after `p - window`; `None`: all.
    window: Option<usize>,
    /// The position buffer row 0 holds.
    start: usize,
}

/// Rows a sliding-window buffer has beyond what the current step needs, so that decoding moves
/// the kept rows only every this many tokens.
pub(crate) const WINDOW_SLACK: usize = 64;

impl SeqKvCache {
    /// A cache for `n_layers` layers that all attend to every earlier position.
    pub fn new(n_layers: usize) -> Self {
        Self::with_windows(vec![None; n_layers])
    }

    /// A cache with one entry per layer: the layer's sliding window, or `None`.
    pub fn with_windows(windows: Vec<Option<usize>>) -> Self {
        Self {
            layers: windows
                .into_iter()
                .map(|window| LayerKv {
                    k: None,
                    v: None,
                    window: window.filter(|w| *w > 0),
                    start: 0,
                })
                .collect(),
            len: 0,
        }
    }

    /// Layers this cache holds keys and values for.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Positions held (the same for every layer once a forward pass has completed).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position at and after `len`, so that a prompt sharing a prefix with this
    /// sequence can continue from it. Returns the length kept: `len`, or 0 (an empty cache) when
    /// a sliding-window layer has already dropped positions a continuation at `len` would see.
    pub fn truncate(&mut self, len: usize) -> usize {
        let len = self.len.min(len);
        let kept = self.layers.iter().all(|l| match l.window {
            Some(w) => l.start <= len.saturating_sub(w - 1),
            None => true,
        });
        if kept {
            self.len = len;
        } else {
            for l in &mut self.layers {
                l.start = 0;
            }
            self.len = 0;
        }
        self.len
    }

    /// A new cache holding copies of this cache's first `len` positions (at most its length), so
    /// that another sequence whose prompt starts with the same tokens continues from there while
    /// this one is kept. `None` when a sliding-window layer has already dropped positions a
    /// continuation at `len` would see. The copy's buffers are sized to `len` rows, rounded
    /// up as appending would.
    pub fn copy_prefix(&self, len: usize) -> Result<Option<SeqKvCache>> {
        let len = self.len.min(len);
        let visible = self.layers.iter().all(|l| match l.window {
            Some(w) => l.start <= len.saturating_sub(w - 1),
            None => true,
        });
        if !visible {
            return Ok(None);
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let rows = len - l.start;
            let copy = |buf: &Option<Tensor>| -> Result<Option<Tensor>> {
                match buf {
                    Some(b) if rows > 0 => {
                        let (heads, _, dim) = b.dims3()?;
                        let cap = rows.next_power_of_two().max(64);
                        let out = Tensor::zeros((heads, cap, dim), b.dtype(), b.device())?;
                        out.slice_set(&b.narrow(1, 0, rows)?.contiguous()?, 1, 0)?;
                        Ok(Some(out))
                    }
                    _ => Ok(None),
                }
            };
            layers.push(LayerKv {
                k: copy(&l.k)?,
                v: copy(&l.v)?,
                window: l.window,
                start: l.start,
            });
        }
        Ok(Some(SeqKvCache { layers, len }))
    }

    /// Bytes held by the buffers (capacity, not length).
    pub fn allocated_bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| [&l.k, &l.v])
            .flatten()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }

    /// Appends `k` and `v` (`[kv_heads, n, head_dim]`) to `layer` at the current length and
    /// returns views of the positions held, `offset..len + n`, and `offset`. Call
    /// [`SeqKvCache::commit`] once every layer has been appended.
    pub fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor, usize)> {
        let len = self.len;
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| crate::ModelError::Input(format!("no layer {layer} in KV cache")))?;
        let n = k.dim(1)?;
        if let Some(w) = slot.window {
            // The first new query (at `len`) sees keys from `len - (w - 1)` on.
            let keep = len.saturating_sub(w - 1).max(slot.start);
            let capacity = slot.k.as_ref().map(|b| b.dim(1)).transpose()?.unwrap_or(0);
            if len - slot.start + n > capacity && keep > slot.start {
                let rows = len - keep;
                let cap = (rows + n + WINDOW_SLACK).max(capacity);
                let from = keep - slot.start;
                slot.k = Some(moved_to_front(slot.k.as_ref(), from, rows, cap, k)?);
                slot.v = Some(moved_to_front(slot.v.as_ref(), from, rows, cap, v)?);
                slot.start = keep;
            }
        }
        let at = len - slot.start;
        let k = grow_and_set(&mut slot.k, k, at)?;
        let v = grow_and_set(&mut slot.v, v, at)?;
        Ok((k, v, slot.start))
    }

    /// Advances the length by `n` after every layer has appended `n` positions.
    pub fn commit(&mut self, n: usize) {
        self.len += n;
    }
}

/// A buffer of `cap` rows holding rows `from..from + rows` of `old` at its front.
fn moved_to_front(
    old: Option<&Tensor>,
    from: usize,
    rows: usize,
    cap: usize,
    like: &Tensor,
) -> Result<Tensor> {
    let (heads, _, dim) = like.dims3()?;
    let buf = Tensor::zeros((heads, cap, dim), like.dtype(), like.device())?;
    if let Some(old) = old
        && rows > 0
    {
        buf.slice_set(&old.narrow(1, from, rows)?.contiguous()?, 1, 0)?;
    }
    Ok(buf)
}

/// Writes `new` at row `len` of `buf` (growing it by doubling when full) and returns a view
/// of rows `0..len + n`.
fn grow_and_set(buf: &mut Option<Tensor>, new: &Tensor, len: usize) -> Result<Tensor> {
    let (heads, n, dim) = new.dims3()?;
    let needed = len + n;
    let capacity = buf.as_ref().map(|b| b.dim(1)).transpose()?.unwrap_or(0);
    if needed > capacity {
        let new_cap = needed.next_power_of_two().max(64);
        let grown = Tensor::zeros((heads, new_cap, dim), new.dtype(), new.device())?;
        if let Some(old) = buf.as_ref()
            && len > 0
        {
            grown.slice_set(&old.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
        }
        *buf = Some(grown);
    }
    let Some(b) = buf.as_ref() else {
        return Err(crate::ModelError::Input(
            "KV buffer missing after growth".into(),
        ));
    };
    b.slice_set(&new.contiguous()?, 1, len)?;
    Ok(b.narrow(1, 0, needed)?)
}

/// The dtype the KV cache uses on a device: f16 on the CPU, where keys and values are rounded to
/// f16 before they are stored (as llama.cpp's f16 cache keeps them), so storing them as f16
/// loses nothing and halves the cache; f32 elsewhere.
pub fn kv_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F16
    } else {
        DType::F32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_prefix_keeps_the_source_and_continues_from_the_prefix() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = SeqKvCache::new(1);
        let a = Tensor::arange(0f32, 8., &dev)?.reshape((1, 4, 2))?;
        c.append(0, &a, &a)?;
        c.commit(4);
        let mut copy = c.copy_prefix(3)?.expect("no window, always copied");
        assert_eq!(copy.len(), 3);
        let b = Tensor::arange(20f32, 22., &dev)?.reshape((1, 1, 2))?;
        let (k, _, _) = copy.append(0, &b, &b)?;
        copy.commit(1);
        assert_eq!(
            k.flatten_all()?.to_vec1::<f32>()?,
            vec![0., 1., 2., 3., 4., 5., 20., 21.]
        );
        // The source is untouched.
        let (k, _, _) = c.append(0, &b, &b)?;
        assert_eq!(
            k.flatten_all()?.to_vec1::<f32>()?,
            vec![0., 1., 2., 3., 4., 5., 6., 7., 20., 21.]
        );
        assert!(c.copy_prefix(100)?.is_some_and(|p| p.len() == 4));
        Ok(())
    }

    #[test]
    fn copy_prefix_refuses_positions_a_window_dropped() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = SeqKvCache::with_windows(vec![Some(4)]);
        for i in 0..200 {
            let t = Tensor::full(i as f32, (1, 1, 2), &dev)?;
            c.append(0, &t, &t)?;
            c.commit(1);
        }
        assert!(c.copy_prefix(10)?.is_none());
        assert!(c.copy_prefix(200)?.is_some());
        Ok(())
    }

    #[test]
    fn append_grows_and_keeps_earlier_positions() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = SeqKvCache::new(1);
        let a = Tensor::arange(0f32, 6., &dev)?.reshape((1, 3, 2))?;
        c.append(0, &a, &a)?;
        c.commit(3);
        let b = Tensor::arange(6f32, 8., &dev)?.reshape((1, 1, 2))?;
        let (k, _, _) = c.append(0, &b, &b)?;
        c.commit(1);
        assert_eq!(
            k.flatten_all()?.to_vec1::<f32>()?,
            vec![0., 1., 2., 3., 4., 5., 6., 7.]
        );
        assert_eq!(c.len(), 4);
        assert_eq!(c.truncate(2), 2);
        let (k, _, _) = c.append(0, &b, &b)?;
        assert_eq!(
            k.flatten_all()?.to_vec1::<f32>()?,
            vec![0., 1., 2., 3., 6., 7.]
        );
        Ok(())
    }

    /// A sliding-window layer holds what later queries can see, in order, in bounded memory,
    /// whatever the chunk sizes; a layer without a window holds everything.
    #[test]
    fn window_layers_keep_what_queries_see_in_bounded_memory() -> Result<()> {
        let dev = Device::Cpu;
        let w = 5;
        let mut c = SeqKvCache::with_windows(vec![Some(w), None]);
        let mut pos = 0usize;
        let mut peak = 0;
        for (step, n) in [1usize, 7, 1, 1, 30, 2, 1]
            .iter()
            .cycle()
            .take(400)
            .enumerate()
        {
            let n = *n;
            let vals = Tensor::arange(pos as f32, (pos + n) as f32, &dev)?.reshape((1, n, 1))?;
            let (k, v, offset) = c.append(0, &vals, &vals)?;
            let (all, _, zero) = c.append(1, &vals, &vals)?;
            c.commit(n);
            let got = k.flatten_all()?.to_vec1::<f32>()?;
            let want: Vec<f32> = (offset..pos + n).map(|p| p as f32).collect();
            assert_eq!(got, want, "step {step}");
            assert_eq!(v.flatten_all()?.to_vec1::<f32>()?, want);
            assert!(
                offset <= pos.saturating_sub(w - 1),
                "step {step}: dropped a visible key"
            );
            assert_eq!((zero, all.dim(1)?), (0, pos + n));
            pos += n;
            let window_rows = c.layers[0].k.as_ref().map_or(0, |t| t.dim(1).unwrap_or(0));
            peak = peak.max(window_rows);
        }
        assert!(
            peak <= 64.max(w - 1 + 30 + WINDOW_SLACK),
            "window buffer grew to {peak}"
        );
        // A continuation far back needs keys the window layer no longer has: the cache resets.
        assert_eq!(c.truncate(3), 0);
        assert!(c.is_empty());
        Ok(())
    }
}
