//! Streaming detokenization that only ever releases complete UTF-8 text.
//!
//! A token can hold part of a multi-byte character (byte-fallback tokens), and SentencePiece
//! decoders change a word's text depending on its neighbours; so each new token's text is the
//! difference between decoding a short window with and without it, released only when it does
//! not end in a replacement character.

use nfai_models::{Result, TextTokenizer};

/// Turns a stream of token ids into a stream of text deltas.
#[derive(Debug, Default)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl IncrementalDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one token and returns the text that became complete (possibly empty).
    pub fn push(&mut self, tokenizer: &TextTokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let prefix = tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let full = tokenizer.decode(&self.ids[self.prefix_offset..], true)?;
        if full.len() > prefix.len()
            && !full.ends_with('\u{FFFD}')
            && let Some(delta) = full.get(prefix.len()..)
        {
            let delta = delta.to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            return Ok(delta);
        }
        Ok(String::new())
    }

    /// Text of tokens not yet released (an incomplete character at the end, shown lossily).
    pub fn flush(&mut self, tokenizer: &TextTokenizer) -> Result<String> {
        let prefix = tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let full = tokenizer.decode(&self.ids[self.prefix_offset..], true)?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(full.get(prefix.len()..).unwrap_or_default().to_string())
    }
}
