//! [`Metered`]: a [`Backend`] around another that reports to the current request's
//! `RequestRecord` (from `crate::context`): the model the name resolved to, each token as it
//! passes (time to first token, inter-token latency) and the usage of finished generations.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use nfai_inference::GenerateEvent;

use super::error::BackendError;
use super::{Backend, BackendHealth, Embeddings, Generation};
use crate::metrics::RequestRecord;
use crate::validate::{ChatRequest, CompletionRequest, EmbeddingRequest};

/// Reports what `inner` does for `display` to the record of the request that calls it.
pub struct Metered {
    inner: Arc<dyn Backend>,
    display: String,
}

impl Metered {
    pub fn new(inner: Arc<dyn Backend>, display: String) -> Self {
        if let Some(r) = crate::context::record() {
            r.set_model(&display);
        }
        Self { inner, display }
    }

    fn record(&self) -> Option<Arc<RequestRecord>> {
        let r = crate::context::record()?;
        r.set_model(&self.display);
        Some(r)
    }
}

/// `g` with its events reported to `record`.
fn metered(g: Generation, record: Option<Arc<RequestRecord>>) -> Generation {
    let Some(record) = record else {
        return g;
    };
    let events = g.events.inspect(move |e| match e {
        GenerateEvent::Token { .. } => record.token(),
        GenerateEvent::Finished { usage, .. } => {
            record.usage(usage.prompt_tokens as u64, usage.completion_tokens as u64)
        }
        GenerateEvent::Failed(_) => {}
    });
    Generation {
        events: events.boxed(),
        echo: g.echo,
    }
}

impl Backend for Metered {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn chat<'a>(
        &'a self,
        model: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        let record = self.record();
        Box::pin(async move { Ok(metered(self.inner.chat(model, req).await?, record)) })
    }

    fn complete<'a>(
        &'a self,
        model: &'a str,
        req: CompletionRequest,
    ) -> BoxFuture<'a, Result<Vec<Generation>, BackendError>> {
        let record = self.record();
        Box::pin(async move {
            let gens = self.inner.complete(model, req).await?;
            Ok(gens
                .into_iter()
                .map(|g| metered(g, record.clone()))
                .collect())
        })
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        req: EmbeddingRequest,
    ) -> BoxFuture<'a, Result<Embeddings, BackendError>> {
        let record = self.record();
        Box::pin(async move {
            let out = self.inner.embed(model, req).await?;
            if let Some(r) = record {
                r.usage(out.prompt_tokens as u64, 0);
            }
            Ok(out)
        })
    }

    fn health(&self) -> BoxFuture<'_, BackendHealth> {
        self.inner.health()
    }
}
