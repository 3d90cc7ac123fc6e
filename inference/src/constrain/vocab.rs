//! The model's vocabulary as llguidance sees it: the bytes of every token, and a
//! `TokenizerEnv` that tokenizes with the model's own tokenizer.
//!
//! Token bytes come from the tokenizer's pieces: byte-level BPE pieces (GPT-2 style, SmolLM2,
//! Llama 3, Qwen) map each character back to its byte; SentencePiece pieces (Llama 2, Gemma)
//! turn `▁` into a space and `<0xNN>` into byte `NN`. Special tokens (control tokens such as
//! `<|im_end|>`) get llguidance's special marker byte in front, so a grammar never produces them
//! as text. Ids past the tokenizer's vocabulary (padding rows of the output matrix) have no
//! bytes and are never allowed.

use std::collections::HashMap;

use nfai_models::TextTokenizer;
use tokenizers::decoders::DecoderWrapper;
use toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// SentencePiece's visible space.
const SPIECE_SPACE: char = '\u{2581}';

/// The bytes of every token id in `0..vocab`.
pub fn token_bytes(tokenizer: &TextTokenizer, vocab: usize) -> Vec<Vec<u8>> {
    let inner = tokenizer.inner();
    let byte_level = matches!(inner.get_decoder(), Some(DecoderWrapper::ByteLevel(_)));
    let added = inner.get_added_tokens_decoder();
    let chars = byte_level_chars();
    (0..vocab)
        .map(|id| {
            let Ok(id) = u32::try_from(id) else {
                return Vec::new();
            };
            if let Some(t) = added.get(&id) {
                let mut bytes = Vec::with_capacity(t.content.len() + 1);
                if t.special {
                    bytes.push(TokTrie::SPECIAL_TOKEN_MARKER);
                }
                bytes.extend_from_slice(t.content.as_bytes());
                return bytes;
            }
            match inner.id_to_token(id) {
                None => Vec::new(),
                Some(piece) if byte_level => piece
                    .chars()
                    .map(|c| chars.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    // A piece outside the byte-level alphabet is kept as its UTF-8 text.
                    .unwrap_or_else(|| piece.into_bytes()),
                Some(piece) => sentencepiece_bytes(&piece),
            }
        })
        .collect()
}

/// `▁` is a space; `<0xNN>` is the byte `NN`.
fn sentencepiece_bytes(piece: &str) -> Vec<u8> {
    if let Some(hex) = piece
        .strip_prefix("<0x")
        .and_then(|rest| rest.strip_suffix('>'))
        && hex.len() == 2
        && let Ok(b) = u8::from_str_radix(hex, 16)
    {
        return vec![b];
    }
    piece.replace(SPIECE_SPACE, " ").into_bytes()
}

/// GPT-2's byte-to-character table, inverted: printable Latin-1 bytes stand for themselves,
/// the others for the characters from U+0100 on, in byte order.
fn byte_level_chars() -> HashMap<char, u8> {
    let mut map = HashMap::with_capacity(256);
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        let c = char::from(b);
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        if printable {
            map.insert(c, b);
        } else {
            if let Some(c) = char::from_u32(next) {
                map.insert(c, b);
            }
            next += 1;
        }
    }
    map
}

/// llguidance's view of one model's tokenizer.
pub struct ModelTokEnv {
    trie: TokTrie,
    tokenizer: TextTokenizer,
    /// Byte-level tokenizers give the canonical tokens of any string; SentencePiece ones add a
    /// leading space to each fragment, so fragments are split greedily on the trie instead.
    canonical: bool,
}

impl ModelTokEnv {
    /// Builds the token trie of `tokenizer` for a model with `vocab` output rows.
    pub fn new(tokenizer: &TextTokenizer, vocab: usize) -> Self {
        let vocab = vocab.max(tokenizer.vocab_size());
        let words = token_bytes(tokenizer, vocab);
        let eos = tokenizer.eos_ids();
        let first_eos = eos.first().copied().unwrap_or(0);
        let info = TokRxInfo::new(u32::try_from(vocab).unwrap_or(u32::MAX), first_eos);
        let mut trie = TokTrie::from(&info, &words);
        if eos.len() > 1 {
            trie = trie.with_eos_tokens(eos);
        }
        let canonical = matches!(
            tokenizer.inner().get_decoder(),
            Some(DecoderWrapper::ByteLevel(_))
        );
        Self {
            trie,
            tokenizer: tokenizer.clone(),
            canonical,
        }
    }
}

impl TokenizerEnv for ModelTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        if self.canonical
            && let Ok(text) = std::str::from_utf8(s)
            && let Ok(ids) = self.tokenizer.encode(text, false)
        {
            return ids;
        }
        self.trie.greedy_tokenize(s)
    }

    fn tokenize_is_canonical(&self) -> bool {
        self.canonical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_covers_every_byte_once() {
        let map = byte_level_chars();
        assert_eq!(map.len(), 256);
        assert_eq!(map.get(&'a'), Some(&b'a'));
        // GPT-2 writes a space as U+0120 'Ġ' and a newline as U+010A 'Ċ'.
        assert_eq!(map.get(&'\u{120}'), Some(&b' '));
        assert_eq!(map.get(&'\u{10A}'), Some(&b'\n'));
    }

    #[test]
    fn sentencepiece_pieces_become_bytes() {
        assert_eq!(sentencepiece_bytes("<0x0A>"), b"\n");
        assert_eq!(sentencepiece_bytes("\u{2581}hello"), b" hello");
        assert_eq!(sentencepiece_bytes("<0xZZ>"), b"<0xZZ>");
    }
}
