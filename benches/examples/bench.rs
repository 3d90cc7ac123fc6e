//! Throughput of the native engines in llama-bench's table format: Gemma 3 270M prompt
//! processing (pp128) and generation (tg128) at batch 1, 4 and 8, and all-MiniLM-L6-v2
//! embeddings per second at batch 1, 8 and 32 on the fixed sentences in
//! `benches/data/sentences.txt`. `scripts/bench-side-by-side.sh` runs it beside llama.cpp and
//! sentence-transformers.
//!
//! `cargo run --release -p nfai-benches --example bench -- [-r REPS] [-t THREADS] [llm|embed|pp|tg]`

use std::time::Instant;

use candle_core::Device;
use nfai_models::{BatchEntry, BertEmbedder, CausalLm, load_gguf_lm};

const TEXT: &str = "Khách hàng Nguyễn Văn An đã gọi điện hỏi về đơn hàng #1234. The customer asked \
    whether the invoice for November can be split into two payments, and wants a reply by Friday.";
const SENTENCES: &str = include_str!("../data/sentences.txt");

struct Args {
    reps: usize,
    threads: usize,
    llm: bool,
    embed: bool,
    pp: bool,
    tg: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        reps: 3,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        llm: true,
        embed: true,
        pp: true,
        tg: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or(format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "-r" | "--reps" => a.reps = num("-r")?,
            "-t" | "--threads" => a.threads = num("-t")?,
            "llm" => a.embed = false,
            "embed" => a.llm = false,
            "pp" => (a.embed, a.tg) = (false, false),
            "tg" => (a.embed, a.pp) = (false, false),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Mean and standard deviation of `reps` runs of `f`, each returning items processed, as
/// items per second (one unmeasured warm-up run first).
fn measure(
    reps: usize,
    mut f: impl FnMut() -> Result<usize, String>,
) -> Result<(f64, f64), String> {
    f()?;
    let mut rates = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let n = f()?;
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let mean = rates.iter().sum::<f64>() / reps as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / reps as f64;
    Ok((mean, var.sqrt()))
}

fn row(model: &str, size: &str, threads: usize, test: &str, (mean, sd): (f64, f64)) {
    println!(
        "| {model:<26} | {size:>10} | nfai-cpu ({kernels}) | {threads:>7} | {test:>12} | {:>20} |",
        format!("{mean:.2} ± {sd:.2}"),
        kernels = nfai_models::kernels::KERNELS,
    );
}

fn bench_llm(a: &Args) -> Result<(), String> {
    let (reps, threads) = (a.reps, a.threads);
    let path = nfai_models::default_model_dir()
        .join("gemma-3-270m")
        .join("gemma-3-270m-q4_k_m.gguf");
    let size = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = format!("{:.2} MiB", size.len() as f64 / (1 << 20) as f64);
    let lm = load_gguf_lm(&path, &Device::Cpu, 4096, None).map_err(|e| e.to_string())?;
    let model = lm.model.as_ref();
    let mut prompt = lm
        .tokenizer
        .encode(&TEXT.repeat(8), true)
        .map_err(|e| e.to_string())?;
    prompt.truncate(128);
    let name = "gemma3 270M Q4_K_M";
    for batch in [1usize, 4, 8] {
        if a.pp {
            let pp = measure(reps, || prefill(model, &prompt, batch))?;
            row(name, &size, threads, &format!("pp128 b{batch}"), pp);
        }
        if a.tg {
            let tg = measure(reps, || generate(model, batch, 128))?;
            row(name, &size, threads, &format!("tg128 b{batch}"), tg);
        }
    }
    Ok(())
}

/// `batch` sequences of `prompt` in one forward pass; returns the tokens processed.
fn prefill(model: &dyn CausalLm, prompt: &[u32], batch: usize) -> Result<usize, String> {
    let mut caches: Vec<_> = (0..batch).map(|_| model.new_cache()).collect();
    let mut entries: Vec<BatchEntry<'_>> = caches
        .iter_mut()
        .map(|cache| BatchEntry {
            tokens: prompt,
            cache,
        })
        .collect();
    model.forward(&mut entries).map_err(|e| e.to_string())?;
    Ok(batch * prompt.len())
}

/// `batch` sequences decoding `steps` tokens each from an empty context, one token per
/// sequence per step (the token fed back is fixed, as in llama-bench: sampling is not timed).
fn generate(model: &dyn CausalLm, batch: usize, steps: usize) -> Result<usize, String> {
    let mut caches: Vec<_> = (0..batch).map(|_| model.new_cache()).collect();
    let token = [2u32];
    for _ in 0..steps {
        let mut entries: Vec<BatchEntry<'_>> = caches
            .iter_mut()
            .map(|cache| BatchEntry {
                tokens: &token,
                cache,
            })
            .collect();
        model.forward(&mut entries).map_err(|e| e.to_string())?;
    }
    Ok(batch * steps)
}

fn bench_embed(reps: usize, threads: usize) -> Result<(), String> {
    let dir = nfai_models::default_model_dir().join("all-minilm-l6-v2");
    let bert = BertEmbedder::load(&dir, &Device::Cpu).map_err(|e| e.to_string())?;
    let ids: Vec<Vec<u32>> = SENTENCES
        .lines()
        .map(|s| bert.tokenize(s))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let size = std::fs::metadata(dir.join("model.safetensors")).map_or(0, |m| m.len());
    let size = format!("{:.2} MiB", size as f64 / (1 << 20) as f64);
    for batch in [1usize, 8, 32] {
        // At least 32 embeddings per measurement, in batches of `batch`.
        let inputs: Vec<Vec<u32>> = ids.iter().cycle().take(32).cloned().collect();
        let r = measure(reps, || {
            for chunk in inputs.chunks(batch) {
                bert.embed(chunk).map_err(|e| e.to_string())?;
            }
            Ok(inputs.len())
        })?;
        row(
            "all-MiniLM-L6-v2 F32",
            &size,
            threads,
            &format!("embed b{batch}"),
            r,
        );
    }
    Ok(())
}

fn main() {
    let result = args().and_then(|a| {
        nfai_models::kernels::init_compute_pool(a.threads);
        println!(
            "| model                      |       size | backend         | threads |         test |                  t/s |"
        );
        println!(
            "| -------------------------- | ---------: | --------------- | ------: | -----------: | -------------------: |"
        );
        if a.llm {
            bench_llm(&a)?;
        }
        if a.embed {
            bench_embed(a.reps, a.threads)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
