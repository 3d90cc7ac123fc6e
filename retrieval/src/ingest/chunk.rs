//! Token chunking as OpenAI's `chunking_strategy` defines it, sized to the embedder.
//!
//! - `static`: windows of `max_chunk_size_tokens` (100..=4096) tokens, consecutive windows
//!   sharing `chunk_overlap_tokens` (at most half the window). A size above the embedder's
//!   limit is refused by name rather than cut silently by the embedder.
//! - `auto`: OpenAI uses 800-token windows overlapping by 400. Here the window is
//!   `min(800, embedder limit)` and the overlap half the window, the same proportion. For
//!   multilingual-e5-small (512 positions, less `<s>`, `</s>` and the `passage: ` prefix) the
//!   window is the embedder's limit.
//!
//! The tokenizer is anything implementing [`Tokenize`] (closures included): it returns the
//! byte range of each token in the text, so chunks are exact slices of the text and any
//! model's tokenizer plugs in.

use std::ops::Range;

use serde_json::Value;

use crate::ingest::IngestError;

/// OpenAI's `auto` window and its bounds for `static`.
const AUTO_MAX_TOKENS: usize = 800;
const MIN_STATIC_TOKENS: usize = 100;
const MAX_STATIC_TOKENS: usize = 4096;

/// A tokenizer as the chunker needs it: the byte range of every token of `text`, in order.
pub trait Tokenize {
    fn token_offsets(&self, text: &str) -> Result<Vec<Range<usize>>, String>;
}

impl<F> Tokenize for F
where
    F: Fn(&str) -> Result<Vec<Range<usize>>, String>,
{
    fn token_offsets(&self, text: &str) -> Result<Vec<Range<usize>>, String> {
        self(text)
    }
}

/// What the embedder can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedderLimits {
    /// Most tokens of text per input, after the model's special tokens and prefix.
    pub max_text_tokens: usize,
}

impl EmbedderLimits {
    /// Limits of a model with `positions` positions, `special_tokens` added per input (2 for
    /// `<s>`…`</s>`) and a prefix of `prefix_tokens` tokens.
    pub fn from_positions(positions: usize, special_tokens: usize, prefix_tokens: usize) -> Self {
        Self {
            max_text_tokens: positions.saturating_sub(special_tokens + prefix_tokens),
        }
    }
}

/// OpenAI's `chunking_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkingStrategy {
    Auto,
    Static {
        max_chunk_size_tokens: usize,
        chunk_overlap_tokens: usize,
    },
}

impl ChunkingStrategy {
    /// Parses `{"type": "auto"}` or `{"type": "static", "static": {...}}`.
    pub fn from_json(value: &Value) -> Result<Self, IngestError> {
        let invalid = |field: &'static str, reason: &str| IngestError::InvalidChunking {
            field,
            reason: reason.into(),
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("chunking_strategy.type", "must be `auto` or `static`"))?;
        match kind {
            "auto" => Ok(Self::Auto),
            "static" => {
                let params = value
                    .get("static")
                    .filter(|v| v.is_object())
                    .ok_or_else(|| invalid("chunking_strategy.static", "must be an object"))?;
                let size = params
                    .get("max_chunk_size_tokens")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        invalid(
                            "chunking_strategy.static.max_chunk_size_tokens",
                            "must be a positive integer",
                        )
                    })?;
                let overlap = params
                    .get("chunk_overlap_tokens")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        invalid(
                            "chunking_strategy.static.chunk_overlap_tokens",
                            "must be a non-negative integer",
                        )
                    })?;
                Ok(Self::Static {
                    max_chunk_size_tokens: usize::try_from(size).unwrap_or(usize::MAX),
                    chunk_overlap_tokens: usize::try_from(overlap).unwrap_or(usize::MAX),
                })
            }
            _ => Err(invalid(
                "chunking_strategy.type",
                "must be `auto` or `static`",
            )),
        }
    }

    /// The window and overlap for an embedder, or the field that the embedder or OpenAI's
    /// bounds refuse.
    pub fn window(self, limits: EmbedderLimits) -> Result<(usize, usize), IngestError> {
        match self {
            Self::Auto => {
                let size = AUTO_MAX_TOKENS.min(limits.max_text_tokens).max(1);
                Ok((size, size / 2))
            }
            Self::Static {
                max_chunk_size_tokens: size,
                chunk_overlap_tokens: overlap,
            } => {
                if !(MIN_STATIC_TOKENS..=MAX_STATIC_TOKENS).contains(&size) {
                    return Err(IngestError::InvalidChunking {
                        field: "chunking_strategy.static.max_chunk_size_tokens",
                        reason: format!(
                            "{size} is outside {MIN_STATIC_TOKENS}..={MAX_STATIC_TOKENS}"
                        ),
                    });
                }
                if size > limits.max_text_tokens {
                    return Err(IngestError::InvalidChunking {
                        field: "chunking_strategy.static.max_chunk_size_tokens",
                        reason: format!(
                            "{size} is above the embedding model's limit of {} tokens",
                            limits.max_text_tokens
                        ),
                    });
                }
                if overlap > size / 2 {
                    return Err(IngestError::InvalidChunking {
                        field: "chunking_strategy.static.chunk_overlap_tokens",
                        reason: format!("{overlap} is more than half of max_chunk_size_tokens"),
                    });
                }
                Ok((size, overlap))
            }
        }
    }
}

/// One chunk of a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    pub index: u32,
    pub text: String,
    /// Tokens in the chunk, by the tokenizer used.
    pub tokens: usize,
}

/// Cuts `text` into token windows; an empty or blank text has no chunks.
pub fn chunk_text(
    text: &str,
    strategy: ChunkingStrategy,
    limits: EmbedderLimits,
    tokenizer: &dyn Tokenize,
) -> Result<Vec<TextChunk>, IngestError> {
    let (size, overlap) = strategy.window(limits)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let offsets = tokenizer
        .token_offsets(text)
        .map_err(IngestError::Tokenizer)?;
    for range in &offsets {
        if range.start > range.end
            || range.end > text.len()
            || !text.is_char_boundary(range.start)
            || !text.is_char_boundary(range.end)
        {
            return Err(IngestError::Tokenizer(format!(
                "token range {range:?} is not within the text"
            )));
        }
    }
    let step = size - overlap;
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < offsets.len() {
        let end = (start + size).min(offsets.len());
        let slice = &text[offsets[start].start..offsets[end - 1].end];
        chunks.push(TextChunk {
            index: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
            text: slice.to_owned(),
            tokens: end - start,
        });
        if end == offsets.len() {
            break;
        }
        start += step;
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Whitespace-separated words as tokens.
    fn words(text: &str) -> Result<Vec<Range<usize>>, String> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    out.push(s..i);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push(s..text.len());
        }
        Ok(out)
    }

    const E5: EmbedderLimits = EmbedderLimits {
        max_text_tokens: 507,
    };

    #[test]
    fn static_windows_overlap_and_cover_the_text() {
        let text: String = (0..250).map(|i| format!("từ{i} ")).collect();
        let strategy = ChunkingStrategy::Static {
            max_chunk_size_tokens: 100,
            chunk_overlap_tokens: 20,
        };
        let chunks = chunk_text(&text, strategy, E5, &words).unwrap();
        // Windows start at 0, 80, 160: the last one reaches the end.
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].tokens, 100);
        assert!(chunks[0].text.starts_with("từ0 ") && chunks[0].text.ends_with("từ99"));
        assert!(chunks[1].text.starts_with("từ80 ") && chunks[1].text.ends_with("từ179"));
        assert!(chunks[2].text.starts_with("từ160 ") && chunks[2].text.ends_with("từ249"));
        assert_eq!(chunks[2].tokens, 90);
        assert_eq!(
            chunks.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn auto_is_sized_to_the_embedder() {
        assert_eq!(ChunkingStrategy::Auto.window(E5).unwrap(), (507, 253));
        let big = EmbedderLimits {
            max_text_tokens: 8192,
        };
        assert_eq!(ChunkingStrategy::Auto.window(big).unwrap(), (800, 400));
        assert_eq!(EmbedderLimits::from_positions(512, 2, 3), E5);
    }

    #[test]
    fn static_sizes_beyond_the_embedder_or_openai_bounds_are_refused_by_name() {
        let check = |size, overlap| {
            ChunkingStrategy::Static {
                max_chunk_size_tokens: size,
                chunk_overlap_tokens: overlap,
            }
            .window(E5)
        };
        let field = |r: Result<(usize, usize), IngestError>| match r {
            Err(IngestError::InvalidChunking { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            field(check(800, 400)),
            "chunking_strategy.static.max_chunk_size_tokens"
        );
        assert_eq!(
            field(check(50, 0)),
            "chunking_strategy.static.max_chunk_size_tokens"
        );
        assert_eq!(
            field(check(400, 201)),
            "chunking_strategy.static.chunk_overlap_tokens"
        );
        assert_eq!(check(500, 250).unwrap(), (500, 250));
    }

    #[test]
    fn strategies_parse_from_openai_json() {
        assert_eq!(
            ChunkingStrategy::from_json(&json!({"type": "auto"})).unwrap(),
            ChunkingStrategy::Auto
        );
        assert_eq!(
            ChunkingStrategy::from_json(&json!({"type": "static", "static": {
                "max_chunk_size_tokens": 300, "chunk_overlap_tokens": 50}}))
            .unwrap(),
            ChunkingStrategy::Static {
                max_chunk_size_tokens: 300,
                chunk_overlap_tokens: 50
            }
        );
        for bad in [
            json!({}),
            json!({"type": "other"}),
            json!({"type": "static"}),
        ] {
            assert!(ChunkingStrategy::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blank_text_has_no_chunks_and_bad_offsets_are_refused() {
        assert!(
            chunk_text(" \n", ChunkingStrategy::Auto, E5, &words)
                .unwrap()
                .is_empty()
        );
        assert!(
            chunk_text("", ChunkingStrategy::Auto, E5, &words)
                .unwrap()
                .is_empty()
        );
        let broken = |_: &str| -> Result<Vec<Range<usize>>, String> { Ok(vec![0..2, 1..99]) };
        assert!(matches!(
            chunk_text("abc", ChunkingStrategy::Auto, E5, &broken),
            Err(IngestError::Tokenizer(_))
        ));
    }
}
