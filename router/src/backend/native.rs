//! The native backend: models run in this process by the engines of `nfai-inference`.
//!
//! It applies the catalog's sampling defaults, renders chat templates, tokenizes (off the async
//! workers), checks prompts against the loaded context, and queues the request on the model's
//! engine without waiting (a full queue fails at once). The request's deadline bounds the wait
//! for its model, its queueing and its generation ([`BackendError::DeadlineExceeded`]).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use nfai_inference::GenerateRequest;
use nfai_inference::constrain::Constraint;
use tokio_stream::wrappers::ReceiverStream;

use super::error::BackendError;
use super::{Backend, BackendHealth, Embeddings, Generation, bounded, within};
use crate::registry::{ChatLease, ChatModel, ModelRegistry};
use crate::validate::{
    self, ChatRequest, CompletionRequest, EmbeddingRequest, FieldError, GenerationOptions, Prompt,
};

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
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, BackendError>
where
    F: FnOnce() -> Result<T, BackendError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Internal(format!("request preparation failed: {e}")))?
}

/// The engine's request; `constraint`: the grammar of a structured answer, if any.
fn start(
    model: &ChatModel,
    prompt_ids: Vec<u32>,
    opts: &GenerationOptions,
    prompt_param: &str,
    constraint: Option<Constraint>,
) -> Result<GenerateRequest, BackendError> {
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
        sampling: match constraint {
            None => opts.sampling.resolve(&model.entry.sampling),
            Some(_) => opts.sampling.resolve(&model.entry.sampling.structured()),
        },
        stop: opts.stop.clone(),
        ignore_eos: opts.ignore_eos,
        constraint,
        tenant: crate::context::tenant(),
    })
}

/// Queues a generation; its event stream holds a lease so the model stays resident until the
/// stream ends or is dropped.
fn submit(
    model: &Arc<ChatLease>,
    req: GenerateRequest,
    echo: String,
) -> Result<Generation, BackendError> {
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

fn encode(model: &ChatModel, text: &str, param: &str) -> Result<Vec<u32>, BackendError> {
    let ids = model
        .engine
        .tokenizer()
        .encode(text, true)
        .map_err(|e| FieldError::invalid(param, e.to_string()))?;
    if ids.is_empty() {
        return Err(FieldError::invalid(param, format!("'{param}' must not be empty.")).into());
    }
    Ok(ids)
}

impl NativeBackend {
    async fn run_chat(&self, name: &str, req: ChatRequest) -> Result<Generation, BackendError> {
        let model = Arc::new(self.registry.chat(name, req.options.keep_alive).await?);
        let (prompt_ids, constraint) = {
            let model = model.clone();
            let (messages, tools, output) = (req.messages, req.tools, req.output);
            blocking(move || {
                let parallel = tools.parallel == Some(true);
                let prompt =
                    super::structured::render(&model.template, messages, &tools.tools, parallel)
                        .map_err(|e| FieldError::invalid("messages", e.to_string()))?;
                let constraint = output
                    .map(|spec| super::structured::compile(&model.engine, &spec))
                    .transpose()?;
                Ok((encode(&model, &prompt, "messages")?, constraint))
            })
            .await?
        };
        let gen_req = start(&model, prompt_ids, &req.options, "messages", constraint)?;
        submit(&model, gen_req, String::new())
    }

    async fn run_completion(
        &self,
        name: &str,
        req: CompletionRequest,
    ) -> Result<Vec<Generation>, BackendError> {
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
                        let param = validate::item_param(i, n, "prompt");
                        let ids = match p {
                            Prompt::Text(t) => encode(&model, &t, &param)?,
                            Prompt::Tokens(ids) => validate::in_vocab(ids, vocab, &param)?,
                        };
                        let echo_text =
                            if echo {
                                model.engine.tokenizer().decode(&ids, true).map_err(|e| {
                                    FieldError::invalid(param.clone(), e.to_string())
                                })?
                            } else {
                                String::new()
                            };
                        Ok((ids, echo_text, param))
                    })
                    .collect::<Result<Vec<_>, BackendError>>()
            })
            .await?
        };
        // Validate every prompt before queueing any, so a bad one wastes no compute.
        let mut planned = Vec::with_capacity(prepared.len());
        for (ids, echo_text, param) in prepared {
            planned.push((start(&model, ids, &req.options, &param, None)?, echo_text));
        }
        planned
            .into_iter()
            .map(|(r, echo_text)| submit(&model, r, echo_text))
            .collect()
    }

    async fn run_embed(
        &self,
        name: &str,
        req: EmbeddingRequest,
    ) -> Result<Embeddings, BackendError> {
        let model = Arc::new(self.registry.embedding(name, req.keep_alive).await?);
        let dim = model.embedder.dim();
        if req.dimensions.is_some_and(|d| d != dim) {
            return Err(FieldError::unsupported(
                "dimensions",
                format!(
                    "This model makes {dim}-dimensional vectors; 'dimensions' must be {dim} or absent."
                ),
            )
            .into());
        }
        let max = model.embedder.max_tokens();
        let vocab = model.embedder.vocab_size();
        let kind = req.input_kind;
        let n = req.inputs.len();
        let inputs = {
            let model = model.clone();
            blocking(move || {
                req.inputs
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let param = validate::item_param(i, n, "input");
                        let mut ids = match p {
                            Prompt::Text(t) => model
                                .embedder
                                .tokenize(&t, kind)
                                .map_err(|e| FieldError::invalid(param.clone(), e.to_string()))?,
                            Prompt::Tokens(ids) => validate::in_vocab(ids, vocab, &param)?,
                        };
                        ids.truncate(max);
                        Ok(ids)
                    })
                    .collect::<Result<Vec<_>, BackendError>>()
            })
            .await?
        };
        let prompt_tokens = inputs.iter().map(Vec::len).sum();
        let tenant = crate::context::tenant();
        let vectors = model.engine.submit(inputs, tenant)?.await.map_err(|_| {
            BackendError::EngineStopped("The embedding engine stopped before answering.".into())
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
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        async move {
            let deadline = req.options.deadline;
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
    ) -> BoxFuture<'a, Result<Vec<Generation>, BackendError>> {
        async move {
            let deadline = req.options.deadline;
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
    ) -> BoxFuture<'a, Result<Embeddings, BackendError>> {
        within(req.deadline, self.run_embed(model, req)).boxed()
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
