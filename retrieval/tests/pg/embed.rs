//! multilingual-e5-small (the real model, from the model dir) behind the retrieval service's
//! `Embed` trait, computed on blocking threads.

use std::ops::Range;
use std::sync::Arc;

use candle_core::Device;
use futures::future::BoxFuture;
use nfai_models::{E5Embedder, InputKind};
use nfai_retrieval::RetrievalError;
use nfai_retrieval::ingest::EmbedderLimits;
use nfai_retrieval::service::{Embed, EmbedderInfo, TextKind};

pub const MODEL: &str = "multilingual-e5-small";

#[derive(Clone)]
pub struct E5Embed(Arc<E5Embedder>);

impl std::fmt::Debug for E5Embed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("E5Embed")
    }
}

impl E5Embed {
    pub fn load() -> Self {
        let path = nfai_models::default_model_dir()
            .join(MODEL)
            .join("e5-small-q4.bin");
        assert!(
            path.exists(),
            "{} is missing: run `nfai models fetch`",
            path.display()
        );
        Self(Arc::new(E5Embedder::load(&path, &Device::Cpu).unwrap()))
    }
}

fn check(model: &str) -> Result<(), RetrievalError> {
    if model == MODEL {
        Ok(())
    } else {
        Err(RetrievalError::InvalidArgument {
            field: "model",
            reason: format!("only {MODEL} here"),
        })
    }
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RetrievalError> + Send + 'static,
) -> BoxFuture<'static, Result<T, RetrievalError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| RetrievalError::Unavailable(e.to_string()))?
    })
}

impl Embed for E5Embed {
    fn describe<'a>(
        &'a self,
        model: &'a str,
    ) -> BoxFuture<'a, Result<EmbedderInfo, RetrievalError>> {
        Box::pin(async move {
            check(model)?;
            let prefix = self
                .0
                .tokenizer()
                .encode(InputKind::Passage.prefix().trim_end())
                .len();
            Ok(EmbedderInfo {
                dimension: 384,
                limits: EmbedderLimits::from_positions(self.0.max_tokens(), 2, prefix),
            })
        })
    }

    fn token_offsets<'a>(
        &'a self,
        model: &'a str,
        text: Arc<str>,
    ) -> BoxFuture<'a, Result<Vec<Range<usize>>, RetrievalError>> {
        let m = Arc::clone(&self.0);
        let checked = check(model);
        blocking(move || {
            checked?;
            // Each whitespace-separated word is tokenized alone; its pieces share its range.
            let mut offsets = Vec::new();
            let mut start = None;
            let push = |r: Range<usize>, offsets: &mut Vec<Range<usize>>| {
                let n = m.tokenizer().encode(&text[r.clone()]).len();
                offsets.extend(std::iter::repeat_n(r, n));
            };
            for (i, c) in text.char_indices() {
                match (c.is_whitespace(), start) {
                    (true, Some(s)) => {
                        push(s..i, &mut offsets);
                        start = None;
                    }
                    (false, None) => start = Some(i),
                    _ => {}
                }
            }
            if let Some(s) = start {
                push(s..text.len(), &mut offsets);
            }
            Ok(offsets)
        })
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        texts: Vec<String>,
        kind: TextKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, RetrievalError>> {
        let m = Arc::clone(&self.0);
        let checked = check(model);
        blocking(move || {
            checked?;
            let kind = match kind {
                TextKind::Query => InputKind::Query,
                TextKind::Passage => InputKind::Passage,
            };
            m.embed_texts(&texts, kind)
                .map_err(|e| RetrievalError::Unavailable(e.to_string()))
        })
    }
}
