//! Tokenizers built from GGUF metadata (`tokenizer.ggml.*`), matching llama.cpp's tokenisation.
//!
//! Two models are supported:
//! - `llama`: SentencePiece-style BPE. The merges are derived from the scores the way llama.cpp's
//!   SPM tokenizer merges ("merge the best-scoring adjacent pair"): every split of a normal piece
//!   into two in-vocabulary pieces, ranked by the merged piece's score. Unknown characters fall
//!   back to the `<0xNN>` byte tokens.
//! - `gpt2`: byte-level BPE from the vocabulary and `tokenizer.ggml.merges`, with the
//!   pre-tokenizer regex chosen by `tokenizer.ggml.pre`.
//!
//! In both, control tokens become special added tokens (split out of the text, left out when
//! decoding with `skip_special`) and user-defined tokens become non-normalised added tokens
//! (always split out, as llama.cpp does).

use std::collections::HashMap;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence as NormSequence};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::TextTokenizer;
use crate::gguf::GgufFile;
use crate::{ModelError, Result};

const TOKEN_NORMAL: i64 = 1;
const TOKEN_UNKNOWN: i64 = 2;
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// SentencePiece's visible space.
const SPIECE_SPACE: &str = "\u{2581}";

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// The tokenizer described by the GGUF metadata.
pub fn from_gguf(gguf: &GgufFile) -> Result<TextTokenizer> {
    let model = gguf.string("tokenizer.ggml.model")?;
    let tokens = gguf.string_array("tokenizer.ggml.tokens")?;
    let types = match gguf.get("tokenizer.ggml.token_type") {
        Some(_) => gguf.int_array("tokenizer.ggml.token_type")?,
        None => vec![TOKEN_NORMAL; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(ModelError::Format(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let bos_id = gguf.opt_u32("tokenizer.ggml.bos_token_id")?;
    let eos_id = gguf.opt_u32("tokenizer.ggml.eos_token_id")?;
    let (mut tokenizer, default_add_bos) = match model {
        "llama" => (build_spm(gguf, &tokens, &types)?, true),
        "gpt2" => (build_byte_level(gguf, &tokens)?, false),
        other => {
            return Err(ModelError::Unsupported(format!(
                "GGUF tokenizer model `{other}` (supported: llama, gpt2)"
            )));
        }
    };
    let add_bos = gguf
        .opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(default_add_bos);
    let add_eos = gguf
        .opt_bool("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false);
    let bos = add_bos
        .then(|| special_piece(&tokens, bos_id, "BOS", "tokenizer.ggml.bos_token_id"))
        .transpose()?;
    let eos = add_eos
        .then(|| special_piece(&tokens, eos_id, "EOS", "tokenizer.ggml.eos_token_id"))
        .transpose()?;
    if bos.is_some() || eos.is_some() {
        tokenizer.with_post_processor(Some(post_processor(bos, eos)?));
    }
    add_special_tokens(&mut tokenizer, &tokens, &types)?;
    Ok(TextTokenizer::new(tokenizer, bos_id, eos_token_ids(gguf)?))
}

/// Texts of the control tokens that end a turn in the chat formats llama.cpp knows.
const END_OF_TURN: &[&str] = &[
    "<end_of_turn>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
];

/// Token ids that end generation: `eos_token_id`, `eot_token_id` and `eom_token_id` when
/// present, plus every control token whose text is an end-of-turn marker (`<end_of_turn>` for
/// Gemma). Unlike llama.cpp, a normal-type piece such as Gemma's `</s>` is not made a stop
/// token: it is ordinary text in that vocabulary.
pub fn eos_token_ids(gguf: &GgufFile) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for key in [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ] {
        if let Some(id) = gguf.opt_u32(key)? {
            ids.push(id);
        }
    }
    let tokens = gguf.string_array("tokenizer.ggml.tokens")?;
    let types = match gguf.get("tokenizer.ggml.token_type") {
        Some(_) => gguf.int_array("tokenizer.ggml.token_type")?,
        None => Vec::new(),
    };
    for (id, (text, ty)) in tokens.iter().zip(&types).enumerate() {
        if *ty == TOKEN_CONTROL && END_OF_TURN.contains(text) {
            ids.push(u32::try_from(id).map_err(tok_err)?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    Ok(ids)
}

fn special_piece(tokens: &[&str], id: Option<u32>, name: &str, key: &str) -> Result<SpecialToken> {
    let id = id.ok_or_else(|| ModelError::Format(format!("metadata key `{key}` is missing")))?;
    let text = tokens
        .get(id as usize)
        .ok_or_else(|| ModelError::Format(format!("`{key}` = {id} is outside the vocabulary")))?;
    SpecialToken::new(name.to_string(), vec![id], vec![(*text).to_string()]).map_err(tok_err)
}

fn post_processor(
    bos: Option<SpecialToken>,
    eos: Option<SpecialToken>,
) -> Result<TemplateProcessing> {
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = Vec::new();
    if let Some(bos) = bos {
        single.push("BOS".to_string());
        pair.push("BOS".to_string());
        specials.push(bos);
    }
    single.push("$A".into());
    pair.push("$A".into());
    if let Some(eos) = eos.as_ref() {
        single.push("EOS".into());
        pair.push("EOS".into());
        specials.push(eos.clone());
    }
    if pair.first().is_some_and(|p| p == "BOS") {
        pair.push("BOS:1".into());
    }
    pair.push("$B:1".into());
    if eos.is_some() {
        pair.push("EOS:1".into());
    }
    TemplateProcessing::builder()
        .try_single(single)
        .map_err(tok_err)?
        .try_pair(pair)
        .map_err(tok_err)?
        .special_tokens(specials)
        .build()
        .map_err(tok_err)
}

/// Control and unknown-type tokens as special added tokens, user-defined tokens as
/// non-normalised added tokens. Both keep their GGUF ids (they are in the model's vocabulary).
fn add_special_tokens(tokenizer: &mut Tokenizer, tokens: &[&str], types: &[i64]) -> Result<()> {
    let mut specials = Vec::new();
    let mut user = Vec::new();
    for (text, ty) in tokens.iter().zip(types) {
        match *ty {
            TOKEN_CONTROL | TOKEN_UNKNOWN => {
                specials.push(AddedToken::from(text.to_string(), true).normalized(false));
            }
            TOKEN_USER_DEFINED => {
                user.push(AddedToken::from(text.to_string(), false).normalized(false));
            }
            _ => {}
        }
    }
    tokenizer.add_special_tokens(specials).map_err(tok_err)?;
    tokenizer.add_tokens(user).map_err(tok_err)?;
    Ok(())
}

/// FNV-1a: much cheaper than SipHash for the short keys of a vocabulary, which is built
/// from trusted model files.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type VocabMap<'a> = HashMap<&'a str, u32, std::hash::BuildHasherDefault<Fnv>>;

/// The vocabulary as a map; like llama.cpp, a repeated piece maps to its last id.
fn vocab_map<'a>(tokens: &[&'a str]) -> Result<VocabMap<'a>> {
    let mut map = VocabMap::with_capacity_and_hasher(tokens.len(), Default::default());
    for (id, t) in tokens.iter().enumerate() {
        map.insert(*t, u32::try_from(id).map_err(tok_err)?);
    }
    Ok(map)
}

fn bpe_vocab(vocab: &VocabMap<'_>) -> Vocab {
    vocab.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
}

fn build_spm(gguf: &GgufFile, tokens: &[&str], types: &[i64]) -> Result<Tokenizer> {
    let scores = gguf.f32_array("tokenizer.ggml.scores")?;
    if scores.len() != tokens.len() {
        return Err(ModelError::Format(format!(
            "tokenizer.ggml.scores has {} entries for {} tokens",
            scores.len(),
            tokens.len()
        )));
    }
    let add_space_prefix = gguf
        .opt_bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let vocab = vocab_map(tokens)?;
    let merges = spm_merges(tokens, types, &scores, &vocab)?;
    let unk = gguf
        .opt_u32("tokenizer.ggml.unknown_token_id")?
        .and_then(|id| tokens.get(id as usize))
        .map(|t| (*t).to_string());
    let mut builder = BPE::builder()
        .vocab_and_merges(bpe_vocab(&vocab), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe = builder.build().map_err(tok_err)?;
    let mut tokenizer = Tokenizer::new(bpe);
    let replace = Replace::new(" ", SPIECE_SPACE).map_err(tok_err)?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormSequence::new(vec![
            Prepend::new(SPIECE_SPACE.to_string()).into(),
            replace.into(),
        ])
        .into()
    } else {
        replace.into()
    };
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(tok_err)?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPIECE_SPACE, " ").map_err(tok_err)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// Every split of a normal piece into two in-vocabulary pieces, best merged score first; ties
/// keep the order of the merged piece's id, then the left and right ids.
///
/// The search is memory-bound (about two hash lookups per character of the vocabulary), so it
/// is spread over the available cores.
fn spm_merges(
    tokens: &[&str],
    types: &[i64],
    scores: &[f32],
    vocab: &VocabMap<'_>,
) -> Result<Vec<(String, String)>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 8);
    let per_thread = tokens.len().div_ceil(threads).max(1);
    let mut found = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..tokens.len())
            .step_by(per_thread)
            .map(|start| {
                let end = (start + per_thread).min(tokens.len());
                scope.spawn(move || merge_candidates(tokens, types, scores, vocab, start..end))
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| tok_err("merge search thread panicked"))?,
            );
        }
        Ok::<_, ModelError>(all)
    })?;
    found.sort_unstable_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    Ok(found
        .into_iter()
        .map(|(_, _, l, r)| {
            (
                tokens[l as usize].to_string(),
                tokens[r as usize].to_string(),
            )
        })
        .collect())
}

/// `(score, merged id, left id, right id)` for every split of the normal pieces in `ids`.
fn merge_candidates(
    tokens: &[&str],
    types: &[i64],
    scores: &[f32],
    vocab: &VocabMap<'_>,
    ids: std::ops::Range<usize>,
) -> Vec<(f32, u32, u32, u32)> {
    let mut found = Vec::new();
    for id in ids {
        let piece = tokens[id];
        if types[id] != TOKEN_NORMAL || piece.chars().nth(1).is_none() {
            continue;
        }
        // A repeated piece is merged into its last id only, the one the vocabulary maps it to.
        let merged_id = id as u32;
        if vocab.len() < tokens.len() && vocab.get(piece) != Some(&merged_id) {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            let Some(&l) = vocab.get(left) else {
                continue;
            };
            if let Some(&r) = vocab.get(right) {
                found.push((scores[id], merged_id, l, r));
            }
        }
    }
    found
}

/// The pre-tokenizer regex llama.cpp uses for `tokenizer.ggml.pre`.
fn byte_level_regex(pre: &str) -> &'static str {
    match pre {
        "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe" | "falcon3" | "pixtral" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        "qwen2" | "deepseek-r1-qwen" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        _ => r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    }
}

/// Whether llama.cpp splits every digit into its own piece before the main regex for this
/// `tokenizer.ggml.pre` (SmolLM, StarCoder and their relatives).
fn splits_digits(pre: &str) -> bool {
    matches!(
        pre,
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b"
    )
}

fn build_byte_level(gguf: &GgufFile, tokens: &[&str]) -> Result<Tokenizer> {
    let merges = gguf
        .string_array("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| ModelError::Format(format!("merge `{m}` has no space")))
        })
        .collect::<Result<Vec<_>>>()?;
    let vocab = vocab_map(tokens)?;
    let bpe = BPE::builder()
        .vocab_and_merges(bpe_vocab(&vocab), merges)
        .build()
        .map_err(tok_err)?;
    let pre = gguf.opt_string("tokenizer.ggml.pre")?.unwrap_or("default");
    let regex = |r: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(
            SplitPattern::Regex(r.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tok_err)?;
        Ok(PreTokenizerWrapper::Split(split))
    };
    let mut steps = Vec::with_capacity(3);
    if splits_digits(pre) {
        steps.push(regex(r"\p{N}")?);
    }
    steps.push(regex(byte_level_regex(pre))?);
    steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
        false, true, false,
    )));
    let pre_tokenizer = PreSequence::new(steps);
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevel::new(false, true, false)));
    Ok(tokenizer)
}

#[cfg(test)]
#[path = "gguf_tests.rs"]
mod tests;
