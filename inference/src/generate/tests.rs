//! Scheduler tests on a toy model whose next token is always `last + 1` (mod vocab).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use candle_core::{Device, Tensor};
use nfai_models::{BatchEntry, CausalLm, LmInfo, SeqKvCache, TextTokenizer};

use super::*;
use crate::sampling::SamplingParams;

const VOCAB: usize = 32;
const EOS: u32 = 31;

struct Counting {
    info: LmInfo,
    /// Batch sizes of every forward call.
    batches: std::sync::Mutex<Vec<usize>>,
    /// Tokens fed to each entry of every forward call.
    fed: std::sync::Mutex<Vec<Vec<usize>>>,
    delay: Duration,
    /// Fails when this token is fed.
    poison: Option<u32>,
    calls: AtomicUsize,
}

impl Counting {
    fn new(delay: Duration, poison: Option<u32>) -> Self {
        Self {
            info: LmInfo {
                architecture: "toy".into(),
                context_length: 1024,
                vocab_size: VOCAB,
                eos_token_ids: vec![EOS],
                kv_bytes_per_token: 0,
            },
            batches: Default::default(),
            fed: Default::default(),
            delay,
            poison,
            calls: AtomicUsize::new(0),
        }
    }
}

impl CausalLm for Counting {
    fn info(&self) -> &LmInfo {
        &self.info
    }
    fn new_cache(&self) -> SeqKvCache {
        SeqKvCache::new(0)
    }
    fn forward(&self, entries: &mut [BatchEntry<'_>]) -> nfai_models::Result<Tensor> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.batches.lock().unwrap().push(entries.len());
        self.fed
            .lock()
            .unwrap()
            .push(entries.iter().map(|e| e.tokens.len()).collect());
        std::thread::sleep(self.delay);
        let mut rows = Vec::new();
        for e in entries.iter_mut() {
            if self.poison.is_some_and(|p| e.tokens.contains(&p)) {
                return Err(nfai_models::ModelError::Input("poisoned token".into()));
            }
            let last = *e.tokens.last().unwrap();
            e.cache.commit(e.tokens.len());
            let mut row = vec![0f32; VOCAB];
            row[(last as usize + 1) % VOCAB] = 10.0;
            rows.extend(row);
        }
        Ok(Tensor::from_vec(
            rows,
            (entries.len(), VOCAB),
            &Device::Cpu,
        )?)
    }
}

fn tokenizer() -> TextTokenizer {
    use tokenizers::models::wordlevel::WordLevel;
    let vocab: HashMap<String, u32> = (0..VOCAB as u32).map(|i| (format!("t{i}"), i)).collect();
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("t0".into())
        .build()
        .unwrap();
    TextTokenizer::new(tokenizers::Tokenizer::new(model), None, vec![EOS])
}

fn engine(model: Arc<Counting>, max_batch: usize, queue: usize) -> GenerationEngine {
    let cfg = GenerationConfig {
        max_batch,
        queue_capacity: queue,
        prefill_chunk: 512,
        prefix_cache_bytes: 0,
        max_queue_wait: None,
    };
    GenerationEngine::start("toy", model, tokenizer(), cfg).unwrap()
}

fn req(prompt: Vec<u32>, max_new: usize) -> GenerateRequest {
    GenerateRequest {
        prompt_ids: prompt,
        max_new_tokens: max_new,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
        ignore_eos: false,
        constraint: None,
        tenant: None,
    }
}

async fn collect(
    mut rx: tokio::sync::mpsc::Receiver<GenerateEvent>,
) -> (Vec<u32>, String, GenerateEvent) {
    let (mut ids, mut text) = (Vec::new(), String::new());
    while let Some(ev) = rx.recv().await {
        match ev {
            GenerateEvent::Token { id, text: t } => {
                ids.push(id);
                text.push_str(&t);
            }
            GenerateEvent::Finished { text: ref t, .. } => {
                text.push_str(t);
                return (ids, text, ev);
            }
            other => return (ids, text, other),
        }
    }
    panic!("stream ended without a final event")
}

#[tokio::test]
async fn decodes_until_length_and_reports_usage() {
    let e = engine(Arc::new(Counting::new(Duration::ZERO, None)), 4, 8);
    let (ids, text, last) = collect(e.submit(req(vec![1, 2], 3)).unwrap()).await;
    assert_eq!(ids, vec![3, 4, 5]);
    assert_eq!(text, "t3 t4 t5");
    let GenerateEvent::Finished { reason, usage, .. } = last else {
        panic!("{last:?}")
    };
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 2,
            completion_tokens: 3,
            cached_tokens: 0,
        }
    );
}

#[tokio::test]
async fn stops_on_eos_without_emitting_it() {
    let e = engine(Arc::new(Counting::new(Duration::ZERO, None)), 4, 8);
    let (ids, _, last) = collect(e.submit(req(vec![28], 10)).unwrap()).await;
    assert_eq!(ids, vec![29, 30], "the EOS token is not emitted");
    assert!(matches!(
        last,
        GenerateEvent::Finished {
            reason: FinishReason::Stop,
            ..
        }
    ));
}

#[tokio::test]
async fn concurrent_sequences_share_forward_passes() {
    let model = Arc::new(Counting::new(Duration::from_millis(5), None));
    let e = engine(model.clone(), 4, 8);
    let rxs: Vec<_> = (0..4).map(|i| e.submit(req(vec![i], 8)).unwrap()).collect();
    let mut outs = Vec::new();
    for rx in rxs {
        outs.push(collect(rx).await.0);
    }
    for (i, ids) in outs.iter().enumerate() {
        let want: Vec<u32> = (1..=8).map(|k| (i as u32 + k) % VOCAB as u32).collect();
        assert_eq!(ids, &want);
    }
    // 4 sequences × 8 tokens in far fewer than 32 forward passes: they ran together.
    let calls = model.calls.load(Ordering::SeqCst);
    assert!(calls < 16, "expected batched steps, got {calls} calls");
    assert!(model.batches.lock().unwrap().iter().any(|&b| b > 1));
}

#[tokio::test]
async fn a_dropped_receiver_frees_its_slot() {
    let model = Arc::new(Counting::new(Duration::from_millis(10), None));
    let e = engine(model.clone(), 1, 8);
    let rx = e.submit(req(vec![1], 1000)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(e.stats().active.load(Ordering::SeqCst), 1);
    drop(rx);
    let steps_at_drop = e.stats().steps.load(Ordering::SeqCst);
    // The next request gets the only slot soon after: the cancelled one left within a step.
    let (ids, _, _) = collect(e.submit(req(vec![5], 2)).unwrap()).await;
    assert_eq!(ids, vec![6, 7]);
    assert_eq!(e.stats().cancelled.load(Ordering::SeqCst), 1);
    let steps = e.stats().steps.load(Ordering::SeqCst) - steps_at_drop;
    assert!(steps <= 4, "cancelled sequence ran {steps} more steps");
}

#[tokio::test]
async fn full_queue_is_refused_at_once() {
    let model = Arc::new(Counting::new(Duration::from_millis(20), None));
    let e = engine(model, 1, 2);
    let _running = e.submit(req(vec![1], 1000)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _a = e.submit(req(vec![1], 10)).unwrap();
    let _b = e.submit(req(vec![1], 10)).unwrap();
    assert_eq!(
        e.submit(req(vec![1], 10)).unwrap_err(),
        SubmitError::QueueFull { capacity: 2 }
    );
}

#[tokio::test]
async fn stop_strings_end_the_sequence_and_are_hidden() {
    let e = engine(Arc::new(Counting::new(Duration::ZERO, None)), 4, 8);
    let mut r = req(vec![1], 10);
    r.stop = vec!["t4".into()];
    let (ids, text, last) = collect(e.submit(r).unwrap()).await;
    assert_eq!(ids, vec![2, 3, 4]);
    assert!(!text.contains("t4"), "{text}");
    assert!(text.contains("t3"), "{text}");
    assert!(matches!(
        last,
        GenerateEvent::Finished {
            reason: FinishReason::Stop,
            ..
        }
    ));
}

#[tokio::test]
async fn model_errors_fail_the_step_and_the_engine_keeps_serving() {
    let e = engine(Arc::new(Counting::new(Duration::ZERO, Some(13))), 4, 8);
    let (_, _, last) = collect(e.submit(req(vec![13], 4)).unwrap()).await;
    assert!(
        matches!(last, GenerateEvent::Failed(EngineError::Input(_))),
        "{last:?}"
    );
    let (ids, _, _) = collect(e.submit(req(vec![1], 2)).unwrap()).await;
    assert_eq!(ids, vec![2, 3]);
}

fn engine_with(model: Arc<Counting>, cfg: GenerationConfig) -> GenerationEngine {
    GenerationEngine::start("toy", model, tokenizer(), cfg).unwrap()
}

/// Token ids 1..=30 repeated: never the EOS id.
fn long_prompt(n: usize) -> Vec<u32> {
    (0..n).map(|i| (i % 30) as u32 + 1).collect()
}

#[tokio::test]
async fn a_repeated_prompt_prefills_only_its_last_token() {
    let model = Arc::new(Counting::new(Duration::ZERO, None));
    let cfg = GenerationConfig {
        max_batch: 4,
        queue_capacity: 8,
        prefill_chunk: 512,
        prefix_cache_bytes: 1 << 20,
        max_queue_wait: None,
    };
    let e = engine_with(model.clone(), cfg);
    let prompt = long_prompt(40);
    let (first, _, _) = collect(e.submit(req(prompt.clone(), 4)).unwrap()).await;
    let calls = model.fed.lock().unwrap().len();
    let (second, _, last) = collect(e.submit(req(prompt.clone(), 4)).unwrap()).await;
    assert_eq!(
        first, second,
        "a cached prefix changes nothing in the output"
    );
    let GenerateEvent::Finished { usage, .. } = last else {
        panic!("{last:?}")
    };
    assert_eq!(usage.prompt_tokens, 40);
    assert_eq!(usage.cached_tokens, 39);
    // The second request's prefill fed one token, not forty.
    assert_eq!(model.fed.lock().unwrap()[calls], vec![1]);
    assert_eq!(e.stats().prefix_hits.load(Ordering::SeqCst), 1);
    assert_eq!(e.stats().prefix_misses.load(Ordering::SeqCst), 1);

    // A prompt that continues the first exchange reuses the prompt and the answer.
    let mut follow_up = prompt.clone();
    follow_up.extend(&first);
    follow_up.extend(long_prompt(5));
    let (_, _, last) = collect(e.submit(req(follow_up, 2)).unwrap()).await;
    let GenerateEvent::Finished { usage, .. } = last else {
        panic!("{last:?}")
    };
    // The cache of a finished sequence holds its prompt and all but the last sampled token.
    assert_eq!(usage.cached_tokens, 40 + first.len() - 1);
}

#[tokio::test]
async fn a_short_or_different_prompt_is_prefilled_in_full() {
    let model = Arc::new(Counting::new(Duration::ZERO, None));
    let cfg = GenerationConfig {
        max_batch: 4,
        queue_capacity: 8,
        prefill_chunk: 512,
        prefix_cache_bytes: 1 << 20,
        max_queue_wait: None,
    };
    let e = engine_with(model, cfg);
    collect(e.submit(req(long_prompt(40), 2)).unwrap()).await;
    let other: Vec<u32> = long_prompt(40).into_iter().rev().collect();
    let (_, _, last) = collect(e.submit(req(other, 2)).unwrap()).await;
    let GenerateEvent::Finished { usage, .. } = last else {
        panic!("{last:?}")
    };
    assert_eq!(usage.cached_tokens, 0);
    assert_eq!(e.stats().prefix_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_long_prompt_never_stalls_running_decodes_for_more_than_one_chunk() {
    let model = Arc::new(Counting::new(Duration::from_millis(2), None));
    let cfg = GenerationConfig {
        max_batch: 4,
        queue_capacity: 8,
        prefill_chunk: 256,
        prefix_cache_bytes: 0,
        max_queue_wait: None,
    };
    let e = engine_with(model.clone(), cfg);
    let mut decode = req(vec![1], 60);
    decode.ignore_eos = true;
    let running = e.submit(decode).unwrap();
    while e.stats().steps.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let long = e.submit(req(long_prompt(2000), 2)).unwrap();
    let (ids, _, _) = collect(running).await;
    assert_eq!(ids.len(), 60);
    collect(long).await;
    let fed = model.fed.lock().unwrap();
    // Every step that fed part of the long prompt fed at most one chunk, and the running
    // sequence decoded in the same step (it is one of the entries).
    let prefill_steps: Vec<&Vec<usize>> = fed.iter().filter(|f| f.iter().any(|&n| n > 1)).collect();
    assert_eq!(prefill_steps.len(), 2000usize.div_ceil(256));
    for f in prefill_steps {
        assert!(f.iter().all(|&n| n <= 256), "{f:?}");
        assert!(f.contains(&1), "the running sequence skipped a step: {f:?}");
    }
}

/// With `max_queue_wait`, a request that would wait longer than the bound for a slot (the
/// requests ahead of it, at the time a sequence has been taking) is refused at once with
/// `Busy`, while one that would wait less joins the queue; with a slot free, requests are
/// admitted whatever the recent service time.
#[tokio::test]
async fn a_request_that_would_wait_too_long_is_shed() {
    // 20 steps of at least 40 ms: a sequence takes about 800 ms in the batch.
    let model = Arc::new(Counting::new(Duration::from_millis(40), None));
    let cfg = GenerationConfig {
        max_batch: 1,
        queue_capacity: 8,
        prefill_chunk: 512,
        prefix_cache_bytes: 0,
        max_queue_wait: Some(Duration::from_millis(1000)),
    };
    let e = GenerationEngine::start("toy", model, tokenizer(), cfg).unwrap();
    let (_, _, end) = collect(e.submit(req(vec![1], 20)).unwrap()).await;
    assert!(matches!(end, GenerateEvent::Finished { .. }), "{end:?}");
    // The scheduler records the sequence's time once it has sent its last event.
    while e.stats().active.load(Ordering::SeqCst) != 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let service = e.stats().service_time.micros();
    assert!(service >= 800_000, "{service}");
    // The slot is busy: the next request waits about half a sequence, under the bound...
    let running = e.submit(req(vec![1], 20)).unwrap();
    let queued = e.submit(req(vec![1], 20)).unwrap();
    // ...and one behind it about one and a half, over it (service time under 2 s, that is
    // steps under 100 ms, keeps the first under the bound).
    match e.submit(req(vec![1], 20)) {
        Err(SubmitError::Busy {
            expected_ms,
            bound_ms,
        }) => {
            assert_eq!(bound_ms, 1000);
            assert!(expected_ms >= 1200, "{expected_ms}");
        }
        other => panic!("expected Busy, got {:?}", other.map(|_| ())),
    }
    assert_eq!(e.stats().shed.load(Ordering::Relaxed), 1);
    for rx in [running, queued] {
        let (_, _, end) = collect(rx).await;
        assert!(matches!(end, GenerateEvent::Finished { .. }), "{end:?}");
    }
    // A free slot admits at once.
    while e.stats().active.load(Ordering::SeqCst) != 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (_, _, end) = collect(e.submit(req(vec![1], 2)).unwrap()).await;
    assert!(matches!(end, GenerateEvent::Finished { .. }), "{end:?}");
}

/// One slot and a backlog of one tenant's requests: another tenant's request is admitted after
/// one of them, not after all of them; requests of one tenant keep their order.
#[tokio::test]
async fn waiting_tenants_are_admitted_in_turn() {
    let model = Arc::new(Counting::new(Duration::from_millis(2), None));
    let e = engine(model, 1, 16);
    let tenant = |name: &str| -> crate::Tenant { Some(name.into()) };
    let with = |prompt: u32, who: &str| GenerateRequest {
        tenant: tenant(who),
        ..req(vec![prompt], 3)
    };
    // Long enough (20 steps) that every request below is queued while it runs.
    let running = e
        .submit(GenerateRequest {
            max_new_tokens: 20,
            ..with(1, "flood")
        })
        .unwrap();
    while e.stats().active.load(Ordering::SeqCst) != 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut queued: Vec<(&str, _)> = (0..5)
        .map(|i| ("flood", e.submit(with(10 + i, "flood")).unwrap()))
        .collect();
    queued.push(("victim", e.submit(with(20, "victim")).unwrap()));
    queued.push(("anonymous", e.submit(req(vec![21], 3)).unwrap()));
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = queued
        .into_iter()
        .enumerate()
        .map(|(i, (who, rx))| {
            let done = done.clone();
            tokio::spawn(async move {
                let (ids, _, end) = collect(rx).await;
                assert!(matches!(end, GenerateEvent::Finished { .. }), "{end:?}");
                done.lock().unwrap().push((who, i, ids[0]));
            })
        })
        .collect();
    collect(running).await;
    for t in tasks {
        t.await.unwrap();
    }
    let order: Vec<(&str, usize)> = done.lock().unwrap().iter().map(|d| (d.0, d.1)).collect();
    assert_eq!(
        order,
        [
            ("flood", 0),
            ("victim", 5),
            ("anonymous", 6),
            ("flood", 1),
            ("flood", 2),
            ("flood", 3),
            ("flood", 4),
        ]
    );
}

/// The queue's capacity bounds the requests waiting in the channel and in the scheduler's own
/// queue together, and a waiting request whose client has gone gives its place back.
#[tokio::test]
async fn the_capacity_counts_every_waiting_request() {
    let model = Arc::new(Counting::new(Duration::from_millis(5), None));
    let e = engine(model, 1, 3);
    let _running = e
        .submit(GenerateRequest {
            ignore_eos: true,
            ..req(vec![1], 1000)
        })
        .unwrap();
    while e.stats().active.load(Ordering::SeqCst) != 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let a = e.submit(req(vec![2], 5)).unwrap();
    let _b = e.submit(req(vec![3], 5)).unwrap();
    let _c = e.submit(req(vec![4], 5)).unwrap();
    // Let the scheduler take them off the channel: they still count.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(e.stats().waiting.load(Ordering::SeqCst), 3);
    assert!(matches!(
        e.submit(req(vec![5], 5)),
        Err(SubmitError::QueueFull { capacity: 3 })
    ));
    drop(a);
    while e.stats().waiting.load(Ordering::SeqCst) != 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(e.stats().cancelled.load(Ordering::SeqCst), 1);
    assert!(e.submit(req(vec![6], 5)).is_ok());
}

/// Every slot held by one tenant: another tenant's request pauses the newest of them, runs at
/// once, and the paused sequence resumes where it stopped, its output unchanged.
#[tokio::test]
async fn a_tenant_with_nothing_running_gets_a_slot_within_a_step() {
    let model = Arc::new(Counting::new(Duration::from_millis(2), None));
    let e = engine(model, 2, 16);
    let with = |prompt: u32, n: usize, who: &str| GenerateRequest {
        tenant: Some(who.into()),
        ignore_eos: true,
        ..req(vec![prompt], n)
    };
    let floods: Vec<_> = (0..2)
        .map(|_| e.submit(with(1, 40, "flood")).unwrap())
        .collect();
    while e.stats().active.load(Ordering::SeqCst) != 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let victim = e.submit(with(5, 3, "victim")).unwrap();
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (who, rx) in floods
        .into_iter()
        .map(|rx| ("flood", rx))
        .chain([("victim", victim)])
    {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let (ids, _, end) = collect(rx).await;
            assert!(matches!(end, GenerateEvent::Finished { .. }), "{end:?}");
            done.lock().unwrap().push(who);
            ids
        }));
    }
    let mut outputs = Vec::new();
    for t in tasks {
        outputs.push(t.await.unwrap());
    }
    assert_eq!(done.lock().unwrap()[0], "victim");
    assert_eq!(e.stats().preempted.load(Ordering::SeqCst), 1);
    let flood_output: Vec<u32> = (2..42).map(|t| t % VOCAB as u32).collect();
    assert_eq!(outputs[0], flood_output);
    assert_eq!(outputs[1], flood_output);
    assert_eq!(outputs[2], vec![6, 7, 8]);
}

/// Tenants that each hold one slot are never paused for another: the newcomer waits its turn.
#[tokio::test]
async fn nobody_is_paused_when_no_tenant_holds_two_slots() {
    let model = Arc::new(Counting::new(Duration::from_millis(2), None));
    let e = engine(model, 2, 16);
    let with = |prompt: u32, who: &str| GenerateRequest {
        tenant: Some(who.into()),
        ignore_eos: true,
        ..req(vec![prompt], 20)
    };
    let a = e.submit(with(1, "a")).unwrap();
    let b = e.submit(with(1, "b")).unwrap();
    while e.stats().active.load(Ordering::SeqCst) != 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let c = e.submit(with(1, "c")).unwrap();
    for rx in [a, b, c] {
        let (ids, _, _) = collect(rx).await;
        assert_eq!(ids.len(), 20);
    }
    assert_eq!(e.stats().preempted.load(Ordering::SeqCst), 0);
}
