//! Constrained decoding: structured outputs (JSON, JSON Schema) and tool calls.
//!
//! The grammar engine is [llguidance](https://github.com/guidance-ai/llguidance), the Rust
//! engine that llama.cpp and vLLM can also use. It was chosen over writing one here or over
//! Outlines-style precompiled automata because it compiles JSON Schema and lark grammars on the
//! fly (no per-schema index build: a new schema costs milliseconds), computes a token mask
//! lazily over a token trie in tens of microseconds per step, supports the JSON Schema subset
//! OpenAI's `strict` mode uses and reports what it cannot compile, and is maintained as a crate
//! with a stable Rust API.
//!
//! - [`Grammars`]: one per model, built once from the model's tokenizer (the token trie is the
//!   expensive part) and kept by the engine handle; compiles an [`OutputFormat`] into a
//!   [`Constraint`]. Compiling runs on the caller's thread (the router's blocking pool).
//! - [`Constraint`]: one per sequence, owned by the engine thread. Each step it masks the
//!   logits row to the tokens the grammar allows, before sampling; the sampled token then
//!   advances it. Once the grammar is complete only end-of-sequence is allowed, and the
//!   sequence finishes without another forward pass; a parallel tool answer also ends at its
//!   first repeated call ([`repeat`]).

mod grammar;
mod narrow;
mod repeat;
mod vocab;

use std::sync::Arc;

use llguidance::{Matcher, ParserFactory};
use nfai_models::TextTokenizer;
use toktrie::TokEnv;

use repeat::RepeatGuard;

pub use grammar::{OutputFormat, TOOL_CALL_PREFIX, ToolSpec, tool_call_schema};
pub use vocab::ModelTokEnv;

/// A format that cannot be compiled, or a tokenizer llguidance cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConstraintError(pub String);

/// One model's grammar compiler: its token trie and llguidance's parser factory.
pub struct Grammars {
    factory: Arc<ParserFactory>,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammars")
            .field("vocab", &self.factory.tok_env().tok_trie().vocab_size())
            .finish()
    }
}

impl Grammars {
    /// Builds the token trie of `tokenizer` for a model with `vocab` output rows.
    pub fn new(tokenizer: &TextTokenizer, vocab: usize) -> Result<Self, ConstraintError> {
        let env: toktrie::TokEnv = Arc::new(ModelTokEnv::new(tokenizer, vocab));
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| ConstraintError(e.to_string()))?;
        factory.quiet();
        Ok(Self {
            factory: Arc::new(factory),
        })
    }

    /// Compiles `format` into a fresh per-sequence constraint.
    pub fn compile(&self, format: &OutputFormat) -> Result<Constraint, ConstraintError> {
        let parser = self
            .factory
            .create_parser(format.grammar())
            .map_err(|e| ConstraintError(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(ConstraintError(e));
        }
        let parallel = matches!(
            format,
            OutputFormat::ToolCall { parallel: true, .. }
                | OutputFormat::TextOrToolCall { parallel: true, .. }
        );
        Ok(Constraint {
            matcher,
            repeats: parallel.then(|| (self.factory.tok_env().clone(), RepeatGuard::default())),
        })
    }
}

/// The grammar state of one sequence.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    /// For parallel tool calls: the token bytes and the calls so far ([`repeat`]).
    repeats: Option<(TokEnv, RepeatGuard)>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("finished", &self.matcher.is_stopped())
            .finish()
    }
}

impl Constraint {
    /// Sets every logit the grammar does not allow next to minus infinity. Once the grammar is
    /// complete only the end-of-sequence tokens remain.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), ConstraintError> {
        let mask = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| ConstraintError(e.to_string()))?;
        let allowed_any = logits.iter_mut().enumerate().fold(false, |any, (i, l)| {
            let ok = u32::try_from(i).is_ok_and(|t| mask.is_allowed(t));
            if !ok {
                *l = f32::NEG_INFINITY;
            }
            any || ok
        });
        if allowed_any {
            Ok(())
        } else {
            Err(ConstraintError(
                "the grammar allows no token of this model's vocabulary".into(),
            ))
        }
    }

    /// Advances the grammar by a sampled token (one that [`Constraint::mask`] allowed).
    pub fn accept(&mut self, token: u32) -> Result<(), ConstraintError> {
        self.matcher
            .consume_token(token)
            .map_err(|e| ConstraintError(e.to_string()))?;
        if let Some((env, guard)) = self.repeats.as_mut() {
            let accepting = self.matcher.is_accepting().unwrap_or(false);
            guard.push(env.tok_trie().token(token), accepting);
        }
        Ok(())
    }

    /// True once nothing but end-of-sequence may follow, or a parallel tool answer has
    /// repeated a call ([`repeat`]).
    pub fn is_complete(&self) -> bool {
        self.matcher.is_stopped() || self.repeats.as_ref().is_some_and(|(_, g)| g.repeated())
    }
}

#[cfg(test)]
mod tests;
