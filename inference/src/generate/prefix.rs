//! The prefix cache: KV caches of finished sequences, kept so that a later prompt starting with
//! the same tokens (a CRM system prompt, few-shot examples, a document asked about again) skips
//! prefilling them.
//!
//! Entries are whole caches keyed by the tokens they hold. A lookup finds the entry sharing the
//! longest prefix with a new prompt and copies that many positions into a fresh cache, so the
//! entry stays for the next request. The scheduler also looks among its running sequences (see
//! `Scheduler::reuse`), so requests arriving together share a prefix as soon as one of them has
//! prefilled it. The cache is bounded by bytes (the buffers' capacity) and evicts the least
//! recently used entry first; its bound is part of the model's memory estimate.

use nfai_models::SeqKvCache;

/// Shared prefixes shorter than this are prefilled again: copying would not pay.
pub const MIN_PREFIX_TOKENS: usize = 16;

struct Entry {
    tokens: Vec<u32>,
    cache: SeqKvCache,
    bytes: usize,
    used: u64,
}

/// Finished sequences' caches, bounded by bytes, least recently used evicted first.
pub(super) struct PrefixCache {
    entries: Vec<Entry>,
    max_bytes: usize,
    bytes: usize,
    clock: u64,
}

impl PrefixCache {
    /// A cache holding at most `max_bytes` of KV buffers; 0 disables it.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: Vec::new(),
            max_bytes,
            bytes: 0,
            clock: 0,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entry sharing the longest usable prefix with `prompt`, and that length: at least
    /// [`MIN_PREFIX_TOKENS`], and short of the whole prompt so that its last token is still fed
    /// (its logits pick the first new token).
    pub fn best(&self, prompt: &[u32]) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, usable_prefix(&e.tokens, prompt)))
            .filter(|&(_, n)| n >= MIN_PREFIX_TOKENS)
            .max_by_key(|&(_, n)| n)
    }

    /// A copy of the first `len` positions of entry `index` (from [`PrefixCache::best`]).
    pub fn copy(&mut self, index: usize, len: usize) -> nfai_models::Result<Option<SeqKvCache>> {
        self.clock += 1;
        let Some(e) = self.entries.get_mut(index) else {
            return Ok(None);
        };
        e.used = self.clock;
        e.cache.copy_prefix(len)
    }

    /// Keeps `cache`, which holds the positions of `tokens` (longer tokens are cut to the cache's
    /// length). An entry whose tokens are a prefix of these is replaced; when an entry already
    /// holds these tokens and more, nothing changes.
    pub fn insert(&mut self, mut tokens: Vec<u32>, cache: SeqKvCache) {
        tokens.truncate(cache.len());
        let bytes = cache.allocated_bytes();
        if !self.is_enabled() || tokens.len() < MIN_PREFIX_TOKENS || bytes > self.max_bytes {
            return;
        }
        self.clock += 1;
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.tokens.len() >= tokens.len() && e.tokens.starts_with(&tokens))
        {
            e.used = self.clock;
            return;
        }
        let mut i = 0;
        while i < self.entries.len() {
            if tokens.starts_with(&self.entries[i].tokens) {
                let old = self.entries.swap_remove(i);
                self.bytes -= old.bytes;
            } else {
                i += 1;
            }
        }
        while self.bytes + bytes > self.max_bytes {
            let Some((lru, _)) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.used) else {
                break;
            };
            let old = self.entries.swap_remove(lru);
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        self.entries.push(Entry {
            tokens,
            cache,
            bytes,
            used: self.clock,
        });
    }
}

/// How many leading positions of a cache holding `held` a sequence with `prompt` can reuse.
pub(super) fn usable_prefix(held: &[u32], prompt: &[u32]) -> usize {
    let common = held.iter().zip(prompt).take_while(|(a, b)| a == b).count();
    common.min(prompt.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn filled(n: usize) -> SeqKvCache {
        let mut c = SeqKvCache::new(1);
        let t = Tensor::zeros((1, n, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        c.append(0, &t, &t).unwrap();
        c.commit(n);
        c
    }

    fn toks(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn the_longest_shared_prefix_wins_and_the_last_prompt_token_is_kept() {
        let mut p = PrefixCache::new(1 << 20);
        p.insert(toks(0..20), filled(20));
        p.insert(toks(100..140), filled(40));
        let mut prompt = toks(100..130);
        prompt.push(7);
        let (i, n) = p.best(&prompt).unwrap();
        assert_eq!(n, 30);
        let copy = p.copy(i, n).unwrap().unwrap();
        assert_eq!(copy.len(), 30);
        // A prompt equal to the cached tokens still feeds its last token.
        assert_eq!(p.best(&toks(0..20)).unwrap().1, 19);
        // Too short a match is not worth a copy.
        assert!(p.best(&toks(0..10)).is_none());
    }

    #[test]
    fn a_longer_sequence_replaces_its_own_prefix_and_not_the_reverse() {
        let mut p = PrefixCache::new(1 << 20);
        p.insert(toks(0..20), filled(20));
        p.insert(toks(0..30), filled(30));
        assert_eq!(p.entries.len(), 1);
        p.insert(toks(0..25), filled(25));
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].tokens.len(), 30);
    }

    #[test]
    fn bytes_stay_bounded_and_the_least_recently_used_goes_first() {
        let one = filled(20).allocated_bytes();
        let mut p = PrefixCache::new(2 * one);
        p.insert(toks(0..20), filled(20));
        p.insert(toks(100..120), filled(20));
        // Using the first makes the second the least recently used.
        let (i, n) = p.best(&toks(0..20)).unwrap();
        p.copy(i, n).unwrap();
        p.insert(toks(200..220), filled(20));
        assert_eq!(p.bytes(), 2 * one);
        assert!(p.best(&toks(0..20)).is_some());
        assert!(p.best(&toks(100..120)).is_none());
        assert!(p.best(&toks(200..220)).is_some());
    }

    #[test]
    fn disabled_keeps_nothing() {
        let mut p = PrefixCache::new(0);
        p.insert(toks(0..20), filled(20));
        assert!(p.best(&toks(0..20)).is_none());
        assert_eq!(p.bytes(), 0);
    }
}
