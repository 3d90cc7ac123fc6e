//! The native backend: models run in this process by the engines of `nfai-inference`.
//!
//! It applies the catalog's sampling defaults, renders chat templates, tokenizes (off the async
//! workers), checks prompts against the loaded context, and queues the request on the model's
//! engine without waiting (a full queue is a 429 at once). A request's `x-request-timeout`
//! bounds the wait for its model, its queueing and its generation (504 `deadline_exceeded`).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use nfai_inference::GenerateRequest;
use tokio_stream::wrappers::ReceiverStream;

use super::*;
use crate::registry::{ChatLease, ChatModel, ModelRegistry};
use crate::validate;

/// Runs requests on the models of a [`ModelRegistry`].
#[derive(Debug)]
pub struct NativeBackend {
    registry: Arc<ModelRegistry>,
}

impl NativeBackend {
    pub fn new(registry: Arc<ModelRegistry>) -> Self {
        Self { registry }
    }

    pub fn registry(&self) -> &Arc<ModelRegistry> {
        &self.registry
    }
}

/// Runs CPU-bound request preparation (templating, tokenization) off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request preparation failed: {e}")))?
}

fn start(
    model: &ChatModel,
    prompt_ids: Vec<u32>,
    opts: &GenerationOptions,
    prompt_param: &str,
) -> Result<GenerateRequest, ApiError> {
    let max_new_tokens = validate::max_new_tokens(
        opts.max_tokens,
        opts.max_tokens_param,
        prompt_ids.len(),
        model.context_length,
        model.entry.sampling.max_tokens,
        prompt_param,
    )?;
    Ok(GenerateRequest {
        prompt_ids,
        max_new_tokens,
        sampling: opts.sampling.resolve(&model.entry.sampling),
        stop: opts.stop.clone(),
        ignore_eos: opts.ignore_eos,
    })
}

/// Queues a generation; its event stream holds a lease so the model stays resident until the
/// stream ends or is dropped.
fn submit(
    model: &Arc<ChatLease>,
    req: GenerateRequest,
    echo: String,
) -> Result<Generation, ApiError> {
    let rx = model.engine.submit(req)?;
    let lease = model.clone();
    let events = ReceiverStream::new(rx)
        .map(move |e| {
            let _held = &lease;
            e
        })
        .boxed();
    Ok(Generation { events, echo })
}

fn encode(model: &ChatModel, text: &str, param: &str) -> Result<Vec<u32>, ApiError> {
    let ids = model
        .engine
        .tokenizer()
        .encode(text, true)
        .map_err(|e| ApiError::invalid(param, e.to_string()))?;
    if ids.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("'{param}' must not be empty."),
        ));
    }
    Ok(ids)
}

fn prompt_param(i: usize, n: usize, field: &str) -> String {
    if n == 1 {
        field.to_string()
    } else {
        format!("{field}[{i}]")
    }
}

impl NativeBackend {
    async fn run_chat(&self, name: &str, req: ChatRequest) -> Result<Generation, ApiError> {
        let model = Arc::new(self.registry.chat(name, req.options.keep_alive).await?);
        let prompt_ids = {
            let model = model.clone();
            let messages = req.messages;
            blocking(move || {
                let prompt = model
                    .template
                    .render(&messages, true)
                    .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
                encode(&model, &prompt, "messages")
            })
            .await?
        };
        let gen_req = start(&model, prompt_ids, &req.options, "messages")?;
        submit(&model, gen_req, String::new())
    }

    async fn run_completion(
        &self,
        name: &str,
        req: CompletionRequest,
    ) -> Result<Vec<Generation>, ApiError> {
        let model = Arc::new(self.registry.chat(name, req.options.keep_alive).await?);
        let n = req.prompts.len();
        let vocab = model.vocab_size;
        let echo = req.echo;
        let prepared = {
            let model = model.clone();
            blocking(move || {
                req.prompts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let param = prompt_param(i, n, "prompt");
                        let ids = match p {
                            Prompt::Text(t) => encode(&model, &t, &param)?,
                            Prompt::Tokens(ids) => validate::in_vocab(ids, vocab, &param)?,
                        };
                        let echo_text = if echo {
                            model
                                .engine
                                .tokenizer()
                                .decode(&ids, true)
                                .map_err(|e| ApiError::invalid(param.clone(), e.to_string()))?
                        } else {
                            String::new()
                        };
                        Ok((ids, echo_text, param))
                    })
                    .collect::<Result<Vec<_>, ApiError>>()
            })
            .await?
        };
        // Validate every prompt before queueing any, so a bad one wastes no compute.
        let mut planned = Vec::with_capacity(prepared.len());
        for (ids, echo_text, param) in prepared {
            planned.push((start(&model, ids, &req.options, &param)?, echo_text));
        }
        planned
            .into_iter()
            .map(|(r, echo_text)| submit(&model, r, echo_text))
            .collect()
    }

    async fn run_embed(&self, name: &str, req: EmbeddingRequest) -> Result<Embeddings, ApiError> {
        let model = Arc::new(self.registry.embedding(name, req.keep_alive).await?);
        let dim = model.embedder.dim();
        if req.dimensions.is_some_and(|d| d != dim) {
            return Err(ApiError::unsupported(
                "dimensions",
                format!(
                    "This model makes {dim}-dimensional vectors; 'dimensions' must be {dim} or absent."
                ),
            ));
        }
        let max = model.embedder.max_tokens();
        let vocab = model.embedder.tokenizer().vocab_size();
        let n = req.inputs.len();
        let inputs = {
            let model = model.clone();
            blocking(move || {
                req.inputs
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let param = prompt_param(i, n, "input");
                        let mut ids = match p {
                            Prompt::Text(t) => model
                                .embedder
                                .tokenize(&t)
                                .map_err(|e| ApiError::invalid(param.clone(), e.to_string()))?,
                            Prompt::Tokens(ids) => validate::in_vocab(ids, vocab, &param)?,
                        };
                        ids.truncate(max);
                        Ok(ids)
                    })
                    .collect::<Result<Vec<_>, ApiError>>()
            })
            .await?
        };
        let prompt_tokens = inputs.iter().map(Vec::len).sum();
        let vectors = model.engine.submit(inputs)?.await.map_err(|_| {
            ApiError::unavailable("The embedding engine stopped before answering.")
        })??;
        Ok(Embeddings {
            vectors,
            prompt_tokens,
        })
    }
}

impl Backend for NativeBackend {
    fn name(&self) -> &str {
        "native"
    }

    fn chat<'a>(
        &'a self,
        model: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Generation, ApiError>> {
        async move {
            let deadline = crate::upstream::current().deadline;
            let g = within(deadline, self.run_chat(model, req)).await?;
            Ok(match deadline {
                Some(d) => bounded::<()>(g, d, None),
                None => g,
            })
        }
        .boxed()
    }

    fn complete<'a>(
        &'a self,
        model: &'a str,
        req: CompletionRequest,
    ) -> BoxFuture<'a, Result<Vec<Generation>, ApiError>> {
        async move {
            let deadline = crate::upstream::current().deadline;
            let gens = within(deadline, self.run_completion(model, req)).await?;
            Ok(match deadline {
                Some(d) => gens
                    .into_iter()
                    .map(|g| bounded::<()>(g, d, None))
                    .collect(),
                None => gens,
            })
        }
        .boxed()
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        req: EmbeddingRequest,
    ) -> BoxFuture<'a, Result<Embeddings, ApiError>> {
        within(
            crate::upstream::current().deadline,
            self.run_embed(model, req),
        )
        .boxed()
    }

    fn health(&self) -> BoxFuture<'_, BackendHealth> {
        async move {
            match self.registry.cache().status().await {
                Ok(_) => BackendHealth::Healthy,
                Err(e) => BackendHealth::Unhealthy(e.to_string()),
            }
        }
        .boxed()
    }
}
