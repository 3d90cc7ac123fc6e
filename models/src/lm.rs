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
#[derive(Debug)]
pub struct SeqKvCache {
    layers: Vec<LayerKv>,
    len: usize,
}

#[derive(Debug)]
struct LayerKv {
    k: Option<Tensor>,
    v: Option<Tensor>,
}

impl SeqKvCache {
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: (0..n_layers)
                .map(|_| LayerKv { k: None, v: None })
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
    /// sequence can continue from it.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
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
    /// returns views of all `len + n` positions. Call [`SeqKvCache::commit`] once every layer
    /// has been appended.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let len = self.len;
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| crate::ModelError::Input(format!("no layer {layer} in KV cache")))?;
        let k = grow_and_set(&mut slot.k, k, len)?;
        let v = grow_and_set(&mut slot.v, v, len)?;
        Ok((k, v))
    }

    /// Advances the length by `n` after every layer has appended `n` positions.
    pub fn commit(&mut self, n: usize) {
        self.len += n;
    }
}

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

/// The dtype the KV cache uses on a device.
pub fn kv_dtype(_device: &Device) -> DType {
    DType::F32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_grows_and_keeps_earlier_positions() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = SeqKvCache::new(1);
        let a = Tensor::arange(0f32, 6., &dev)?.reshape((1, 3, 2))?;
        c.append(0, &a, &a)?;
        c.commit(3);
        let b = Tensor::arange(6f32, 8., &dev)?.reshape((1, 1, 2))?;
        let (k, _) = c.append(0, &b, &b)?;
        c.commit(1);
        assert_eq!(
            k.flatten_all()?.to_vec1::<f32>()?,
            vec![0., 1., 2., 3., 4., 5., 6., 7.]
        );
        assert_eq!(c.len(), 4);
        c.truncate(2);
        let (k, _) = c.append(0, &b, &b)?;
        assert_eq!(
            k.flatten_all()?.to_vec1::<f32>()?,
            vec![0., 1., 2., 3., 6., 7.]
        );
        Ok(())
    }
}
