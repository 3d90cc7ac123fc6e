//! The embedded vector store (qdrant-edge, as nfai configures it) at 100,000 chunks of 384
//! dimensions, side by side with pgvector: search latency on one client thread (p50, p99,
//! queries/s) and recall@10 against exact search, for a sweep of the HNSW search width `ef`,
//! the two engines alternating query rounds in one run.
//!
//! `cargo bench -p nfai-benches --bench retrieval_store`
//!
//! - Vectors: synthetic, with the structure of sentence embeddings: every vector shares one
//!   common direction (unrelated texts have cosine ≈ 0.6 under e5), belongs to one of 1,000
//!   topic clusters and varies inside a 12-dimensional subspace of its cluster, plus a little
//!   isotropic noise; unit length. 1,000 queries are drawn the same way, not from the stored
//!   set. Ground truth: the exact top 10 by cosine.
//! - nfai: `EdgeCollection::search` (the path `/v1/vector_stores/{id}/search` takes, model
//!   check and payload decoding included) with `EdgeStoreOptions::default()` but `hnsw_ef`:
//!   HNSW m = 16, ef_construct = 100, int8 scalar quantization in RAM, candidates rescored
//!   with the f32 vectors (oversampling 2).
//! - pgvector: benches/scripts/pgvector_peer.sh (PyPI `pgserver`: PostgreSQL 16 + pgvector
//!   0.6.2), the same vectors, `hnsw (embedding vector_cosine_ops)` with m = 16 and
//!   ef_construction = 100, `hnsw.ef_search` = ef, timed per query by a psycopg client over a
//!   Unix socket (its `SELECT 1` round trip is printed beside). `NFAI_BENCH_PEER=0` leaves it
//!   out.
//!
//! The data, the ground truth and the built collection are cached under the target folder
//! (`target/tmp/retrieval-100k`, or `NFAI_BENCH_CACHE`); the first run builds them (a few
//! minutes on 2 cores), later runs only search.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use nfai_retrieval::{
    Chunk, ChunkPayload, CollectionSpec, EdgeCollection, EdgeStoreOptions, SearchQuery,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const POINTS: usize = 100_000;
const DIM: usize = 384;
const QUERIES: usize = 1_000;
const CLUSTERS: usize = 1_000;
const SUBSPACE: usize = 12;
const TOP_K: usize = 10;
const HNSW_M: usize = 16;
const EF_CONSTRUCT: usize = 100;
const EFS: [usize; 5] = [16, 32, 64, 128, 256];
/// Rounds over every `ef`, alternating the engines; latencies of all rounds are pooled.
const PASSES: usize = 3;
const WARMUP: usize = 200;
const MODEL: &str = "synthetic-384";
/// Bump when the generator or the collection layout changes, to rebuild the cache.
const DATA_VERSION: u32 = 1;

fn cache_dir() -> PathBuf {
    std::env::var_os("NFAI_BENCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("retrieval-100k"))
}

// ---------------------------------------------------------------------------------------
// Data

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller; `1 - u` keeps the logarithm finite.
    let u: f32 = 1.0 - rng.random::<f32>();
    let v: f32 = rng.random::<f32>();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn gaussian_vector(rng: &mut StdRng, scale: f32) -> Vec<f32> {
    (0..DIM).map(|_| gaussian(rng) * scale).collect()
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Embedding-like synthetic vectors: common direction + cluster centre + a point of the
/// cluster's subspace + noise.
struct Generator {
    common: Vec<f32>,
    centers: Vec<Vec<f32>>,
    bases: Vec<Vec<Vec<f32>>>,
}

impl Generator {
    fn new(rng: &mut StdRng) -> Self {
        let unit = 1.0 / (DIM as f32).sqrt();
        let mut common = gaussian_vector(rng, unit);
        normalize(&mut common);
        let centers = (0..CLUSTERS).map(|_| gaussian_vector(rng, unit)).collect();
        let bases = (0..CLUSTERS)
            .map(|_| (0..SUBSPACE).map(|_| gaussian_vector(rng, unit)).collect())
            .collect();
        Self {
            common,
            centers,
            bases,
        }
    }

    fn point(&self, rng: &mut StdRng) -> Vec<f32> {
        let cluster = rng.random_range(0..CLUSTERS);
        let noise = 0.2 / (DIM as f32).sqrt();
        let mut v: Vec<f32> = self
            .common
            .iter()
            .zip(&self.centers[cluster])
            .map(|(c, m)| 1.6 * c + m + gaussian(rng) * noise)
            .collect();
        for basis in &self.bases[cluster] {
            let z = 0.25 * gaussian(rng);
            v.iter_mut().zip(basis).for_each(|(x, b)| *x += z * b);
        }
        normalize(&mut v);
        v
    }
}

fn write_f32(path: &Path, rows: &[Vec<f32>]) {
    let mut bytes = Vec::with_capacity(rows.len() * DIM * 4);
    for row in rows {
        row.iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    std::fs::write(path, bytes).expect("write vectors");
}

fn read_f32(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).expect("read vectors");
    bytes
        .chunks_exact(DIM * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for ((sum, x), y) in acc.iter_mut().zip(x).zip(y) {
            *sum += x * y;
        }
    }
    acc.iter().sum()
}

/// The exact top `TOP_K` ids of `query` by cosine (all vectors are unit length).
fn exact_top(vectors: &[Vec<f32>], query: &[f32]) -> Vec<u64> {
    let mut best: Vec<(f32, u64)> = Vec::with_capacity(TOP_K + 1);
    for (id, v) in vectors.iter().enumerate() {
        let score = dot(v, query);
        if best.len() < TOP_K || score > best[best.len() - 1].0 {
            let at = best.partition_point(|(s, _)| *s >= score);
            best.insert(at, (score, id as u64));
            best.truncate(TOP_K);
        }
    }
    best.into_iter().map(|(_, id)| id).collect()
}

struct Data {
    vectors: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    truth: Vec<Vec<u64>>,
}

fn load_or_make_data(dir: &Path) -> Data {
    let stamp = dir.join("data.version");
    let fresh = std::fs::read_to_string(&stamp).ok() != Some(DATA_VERSION.to_string());
    if fresh {
        std::fs::create_dir_all(dir).expect("create the cache folder");
        let started = Instant::now();
        let mut rng = StdRng::seed_from_u64(19);
        let generator = Generator::new(&mut rng);
        let vectors: Vec<Vec<f32>> = (0..POINTS).map(|_| generator.point(&mut rng)).collect();
        let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| generator.point(&mut rng)).collect();
        let truth: Vec<Vec<u64>> = std::thread::scope(|s| {
            let halves: Vec<_> = queries
                .chunks(QUERIES.div_ceil(2))
                .map(|part| {
                    let vectors = &vectors;
                    s.spawn(move || {
                        part.iter()
                            .map(|q| exact_top(vectors, q))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            halves
                .into_iter()
                .flat_map(|h| h.join().expect("ground truth thread"))
                .collect()
        });
        write_f32(&dir.join("vectors.f32"), &vectors);
        write_f32(&dir.join("queries.f32"), &queries);
        let truth_text: Vec<String> = truth
            .iter()
            .map(|ids| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" "))
            .collect();
        std::fs::write(dir.join("truth.txt"), truth_text.join("\n")).expect("write truth");
        // A new data set invalidates a built collection.
        let _ = std::fs::remove_dir_all(dir.join("edge"));
        std::fs::write(&stamp, DATA_VERSION.to_string()).expect("write the data stamp");
        eprintln!(
            "generated {POINTS} vectors, {QUERIES} queries and their exact top {TOP_K} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let truth = std::fs::read_to_string(dir.join("truth.txt"))
        .expect("read truth")
        .lines()
        .map(|l| l.split(' ').map(|id| id.parse().expect("an id")).collect())
        .collect();
    Data {
        vectors: read_f32(&dir.join("vectors.f32")),
        queries: read_f32(&dir.join("queries.f32")),
        truth,
    }
}

// ---------------------------------------------------------------------------------------
// nfai's embedded store

fn options(ef: Option<usize>) -> EdgeStoreOptions {
    EdgeStoreOptions {
        hnsw_m: HNSW_M,
        hnsw_ef_construct: EF_CONSTRUCT,
        hnsw_ef: ef,
        ..EdgeStoreOptions::default()
    }
}

/// Builds the collection once (upsert, then optimize until every vector is indexed) and
/// returns the seconds the build took, from this run or the cached one.
fn build_collection(dir: &Path, data: &Data) -> (f64, f64) {
    let marker = dir.join("built.txt");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut parts = text.split_whitespace().map(|p| p.parse().unwrap_or(0.0));
        return (parts.next().unwrap_or(0.0), parts.next().unwrap_or(0.0));
    }
    let spec = CollectionSpec {
        model: MODEL.into(),
        dimension: DIM,
    };
    let collection =
        EdgeCollection::create("bench", dir, spec, &options(None)).expect("create collection");
    let started = Instant::now();
    for (batch_index, batch) in data.vectors.chunks(1_000).enumerate() {
        let chunks = batch
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = (batch_index * 1_000 + i) as u64;
                Chunk {
                    id,
                    vector: v.clone(),
                    payload: ChunkPayload {
                        file_id: format!("file-{}", id / 100),
                        filename: "synthetic.txt".into(),
                        chunk_index: (id % 100) as u32,
                        text: String::new(),
                        attributes: BTreeMap::new(),
                        lang: None,
                    },
                }
            })
            .collect();
        collection.upsert(chunks).expect("upsert");
    }
    let upsert_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    while collection.optimize().expect("optimize") {}
    collection.flush().expect("flush");
    let optimize_s = started.elapsed().as_secs_f64();
    let info = collection.info().expect("info");
    eprintln!(
        "built the collection: {} points, {} indexed; upsert {upsert_s:.1} s, optimize {optimize_s:.1} s",
        info.points, info.indexed_vectors
    );
    std::fs::write(&marker, format!("{upsert_s} {optimize_s}")).expect("write the marker");
    (upsert_s, optimize_s)
}

/// One round of timed searches; per-query latencies in µs and the ids found.
fn edge_round(collection: &EdgeCollection, data: &Data) -> (Vec<f64>, Vec<Vec<u64>>) {
    let query = |i: usize| SearchQuery {
        model: MODEL.into(),
        vector: data.queries[i % QUERIES].clone(),
        filter: None,
        limit: TOP_K,
        score_threshold: None,
        languages: None,
    };
    for i in 0..WARMUP {
        collection.search(query(i)).expect("search");
    }
    let mut latencies = Vec::with_capacity(QUERIES);
    let mut ids = Vec::with_capacity(QUERIES);
    for i in 0..QUERIES {
        let q = query(i);
        let started = Instant::now();
        let hits = collection.search(q).expect("search");
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        ids.push(hits.into_iter().map(|h| h.id).collect());
    }
    (latencies, ids)
}

// ---------------------------------------------------------------------------------------
// The pgvector peer

struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    ready: serde_json::Value,
}

impl Peer {
    fn start(dir: &Path) -> Result<Self, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pgvector_peer.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .args(["serve", "--data"])
            .arg(dir)
            .args([
                "--dim".to_owned(),
                DIM.to_string(),
                "--m".to_owned(),
                HNSW_M.to_string(),
                "--ef-construction".to_owned(),
                EF_CONSTRUCT.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", script.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("peer: {e}"))?;
        let ready = line
            .strip_prefix("ready ")
            .and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| format!("the peer did not start (it said {line:?})"))?;
        Ok(Self {
            child,
            stdin,
            stdout,
            ready,
        })
    }

    fn round(&mut self, ef: usize) -> (Vec<f64>, Vec<Vec<u64>>) {
        writeln!(self.stdin, "run {ef} {WARMUP} {QUERIES}").expect("write to the peer");
        self.stdin.flush().expect("flush to the peer");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the peer");
        let v: serde_json::Value = serde_json::from_str(&line).expect("the peer's JSON");
        let latencies = v["latencies_us"]
            .as_array()
            .expect("latencies")
            .iter()
            .map(|x| x.as_f64().expect("a latency"))
            .collect();
        let ids = v["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("a row of ids")
                    .iter()
                    .map(|id| id.as_u64().expect("an id"))
                    .collect()
            })
            .collect();
        (latencies, ids)
    }

    fn stop(mut self) {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Results

#[derive(Default, Clone)]
struct Measured {
    latencies: Vec<f64>,
    recall: f64,
}

impl Measured {
    fn add(&mut self, latencies: Vec<f64>, ids: &[Vec<u64>], truth: &[Vec<u64>]) {
        let found: usize = ids
            .iter()
            .zip(truth)
            .map(|(got, want)| got.iter().filter(|id| want.contains(id)).count())
            .sum();
        // Searches are deterministic: every round finds the same ids.
        self.recall = found as f64 / (truth.len() * TOP_K) as f64;
        self.latencies.extend(latencies);
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(at).copied().unwrap_or(f64::NAN) / 1000.0
    }

    /// Queries per second of one client thread: 1 / mean latency.
    fn qps(&self) -> f64 {
        let mean = self.latencies.iter().sum::<f64>() / self.latencies.len().max(1) as f64;
        1e6 / mean
    }

    fn cells(&self) -> String {
        format!(
            "{:.3} | {:.3} | {:.3} | {:.0}",
            self.recall,
            self.percentile_ms(0.5),
            self.percentile_ms(0.99),
            self.qps()
        )
    }
}

/// The fastest setting that reaches `target` recall.
fn at_recall(rows: &[(usize, Measured)], target: f64) -> Option<(usize, f64)> {
    rows.iter()
        .filter(|(_, m)| m.recall >= target)
        .map(|(ef, m)| (*ef, m.qps()))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn main() {
    let dir = cache_dir();
    let data = load_or_make_data(&dir);
    let edge_dir = dir.join("edge");
    let (upsert_s, optimize_s) = build_collection(&edge_dir, &data);

    // Exact scan, for scale: one thread, plain Rust.
    let started = Instant::now();
    for q in data.queries.iter().take(100) {
        std::hint::black_box(exact_top(&data.vectors, q));
    }
    let exact_ms = started.elapsed().as_secs_f64() * 1000.0 / 100.0;

    let mut peer = if std::env::var("NFAI_BENCH_PEER").as_deref() == Ok("0") {
        None
    } else {
        match Peer::start(&dir) {
            Ok(peer) => Some(peer),
            Err(e) => {
                eprintln!("pgvector peer left out: {e}");
                None
            }
        }
    };

    let mut nfai: Vec<(usize, Measured)> =
        EFS.iter().map(|&ef| (ef, Measured::default())).collect();
    let mut pg: Vec<(usize, Measured)> = nfai.clone();
    for pass in 0..PASSES {
        for (i, &ef) in EFS.iter().enumerate() {
            let collection = EdgeCollection::open("bench", &edge_dir, &options(Some(ef)))
                .expect("open the collection")
                .expect("the collection exists");
            let (latencies, ids) = edge_round(&collection, &data);
            nfai[i].1.add(latencies, &ids, &data.truth);
            drop(collection);
            if let Some(peer) = peer.as_mut() {
                let (latencies, ids) = peer.round(ef);
                pg[i].1.add(latencies, &ids, &data.truth);
            }
        }
        eprintln!("pass {} of {PASSES} done", pass + 1);
    }

    println!(
        "\nEmbedded store: {POINTS} chunks × {DIM} dims (synthetic, {CLUSTERS} clusters), \
         {QUERIES} queries × {PASSES} passes, top {TOP_K}, one client thread"
    );
    println!(
        "HNSW m = {HNSW_M}, ef_construct = {EF_CONSTRUCT}. nfai: qdrant-edge 0.7.2, int8 scalar \
         quantization (quantile 0.99, in RAM), rescoring with f32 vectors, oversampling 2; \
         build {upsert_s:.1} s upsert + {optimize_s:.1} s optimize (cached after the first run)"
    );
    if let Some(peer) = &peer {
        let r = &peer.ready;
        println!(
            "pgvector {} on PostgreSQL {} (pgserver), shared_buffers {}, f32 vectors, \
             index build {:.1} s; client psycopg {} over a Unix socket, SELECT 1 round trip \
             p50 {:.0} µs",
            r["pgvector"].as_str().unwrap_or("?"),
            r["postgres"].as_str().unwrap_or("?"),
            r["shared_buffers"].as_str().unwrap_or("?"),
            r["build_s"].as_f64().unwrap_or(f64::NAN),
            r["psycopg"].as_str().unwrap_or("?"),
            r["select1_p50_us"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!("exact scan (plain Rust, one thread): {exact_ms:.2} ms a query\n");
    if peer.is_some() {
        println!(
            "| ef | nfai recall@10 | p50 ms | p99 ms | q/s | pgvector recall@10 | p50 ms | p99 ms | q/s | q/s ratio |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for ((ef, n), (_, p)) in nfai.iter().zip(&pg) {
            println!(
                "| {ef} | {} | {} | {:.2}× |",
                n.cells(),
                p.cells(),
                n.qps() / p.qps()
            );
        }
    } else {
        println!("| ef | nfai recall@10 | p50 ms | p99 ms | q/s |");
        println!("|---:|---:|---:|---:|---:|");
        for (ef, n) in &nfai {
            println!("| {ef} | {} |", n.cells());
        }
    }
    println!();
    for target in [0.95, 0.99] {
        let ours = at_recall(&nfai, target);
        let theirs = peer.as_ref().and(at_recall(&pg, target));
        match (ours, theirs) {
            (Some((ef_n, q_n)), Some((ef_p, q_p))) => println!(
                "recall@10 ≥ {target}: nfai {q_n:.0} q/s (ef {ef_n}), pgvector {q_p:.0} q/s \
                 (ef {ef_p}): {:.2}×",
                q_n / q_p
            ),
            (Some((ef_n, q_n)), None) => println!(
                "recall@10 ≥ {target}: nfai {q_n:.0} q/s (ef {ef_n}); pgvector: not reached or not run"
            ),
            (None, _) => println!("recall@10 ≥ {target}: not reached by nfai at ef ≤ 256"),
        }
    }
    if let Some(peer) = peer.take() {
        peer.stop();
    }
}
