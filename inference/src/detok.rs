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

    /// Text of tokens not yet released, without an incomplete character at the end: a
    /// generation cut inside a multi-byte character (by `max_tokens`, a stop or a deadline)
    /// ends before it, not in U+FFFD.
    pub fn flush(&mut self, tokenizer: &TextTokenizer) -> Result<String> {
        let prefix = tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let full = tokenizer.decode(&self.ids[self.prefix_offset..], true)?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        let tail = full.get(prefix.len()..).unwrap_or_default();
        Ok(tail.trim_end_matches('\u{FFFD}').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::decoders::byte_level::ByteLevel;
    use tokenizers::models::bpe::BPE;

    /// A byte-level vocabulary of single characters: `a`, and `é`'s two bytes (`Ã`, `©` in
    /// byte-level form), so that one token holds part of a character.
    fn tokenizer() -> TextTokenizer {
        let vocab: tokenizers::models::bpe::Vocab = [("a", 0u32), ("Ã", 1), ("©", 2)]
            .into_iter()
            .map(|(t, i)| (t.to_string(), i))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, Vec::new())
            .build()
            .expect("a valid vocabulary");
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_decoder(Some(ByteLevel::default()));
        TextTokenizer::new(inner, None, Vec::new())
    }

    #[test]
    fn a_character_split_over_tokens_is_released_whole() -> Result<()> {
        let t = tokenizer();
        let mut d = IncrementalDecoder::new();
        assert_eq!(d.push(&t, 0)?, "a");
        assert_eq!(d.push(&t, 1)?, "");
        assert_eq!(d.push(&t, 2)?, "é");
        assert_eq!(d.flush(&t)?, "");
        Ok(())
    }

    #[test]
    fn an_incomplete_character_at_the_end_is_dropped() -> Result<()> {
        let t = tokenizer();
        let mut d = IncrementalDecoder::new();
        assert_eq!(d.push(&t, 0)?, "a");
        assert_eq!(d.push(&t, 1)?, "");
        assert_eq!(d.flush(&t)?, "");
        Ok(())
    }
}
