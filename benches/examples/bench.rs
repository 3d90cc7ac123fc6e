//! Throughput of the native engines in llama-bench's table format: Gemma 3 270M prompt
//! processing (pp128) and generation (tg128) at batch 1, 4 and 8, and all-MiniLM-L6-v2
//! embeddings per second at batch 1, 8 and 32 on the fixed sentences in
//! `benches/data/sentences.txt`. `scripts/bench-side-by-side.sh` runs it beside llama.cpp and
//! sentence-transformers.
//!
//! `cargo run --release -p nfai-benches --example bench -- [-r REPS] [-t THREADS] [llm|embed|pp|tg]`
//!
//! Other models and devices (the same program on a GPU, built with `--features cuda`):
//! `--model FILE.gguf` (a Gemma 3 file, e.g. one `nfai models synth` wrote), `--device cuda:0`,
//! `--batches 1,8,32`, `-p N` for prefill rows of N prompt tokens (default 128, llama-bench's
//! pp128; `-p 512` for pp512), and `--bandwidth GB/s` to print decode at batch 1 against the
//! memory-bandwidth bound (bytes of weights per step ÷ bandwidth). It also prints the load
//! time and, on a GPU, the VRAM the model took.

use std::time::Instant;

use candle_core::Device;
use nfai_models::{BatchEntry, BertEmbedder, CausalLm, load_gguf_lm};

const TEXT: &str = "Khách hàng Nguyễn Văn An đã gọi điện hỏi về đơn hàng #1234. The customer asked \
    whether the invoice for November can be split into two payments, and wants a reply by Friday.";
const SENTENCES: &str = include_str!("../data/sentences.txt");

struct Args {
    reps: usize,
    threads: usize,
    model: Option<std::path::PathBuf>,
    device: String,
    batches: Vec<usize>,
    prompt: usize,
    bandwidth_gbs: Option<f64>,
    llm: bool,
    embed: bool,
    pp: bool,
    tg: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        reps: 3,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        model: None,
        device: "cpu".into(),
        batches: vec![1, 4, 8],
        prompt: 128,
        bandwidth_gbs: None,
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
            "-p" | "--prompt" => a.prompt = num("-p")?,
            "--model" => a.model = it.next().map(Into::into),
            "--device" => a.device = it.next().ok_or("--device needs a name")?,
            "--batches" => {
                a.batches = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|b| b.trim().parse().ok().filter(|&b: &usize| b > 0))
                    .collect::<Option<_>>()
                    .ok_or("--batches needs positive numbers, e.g. 1,8,32")?
            }
            "--bandwidth" => {
                a.bandwidth_gbs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&v: &f64| v > 0.0)
            }
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

fn row(model: &str, size: &str, backend: &str, threads: usize, test: &str, (mean, sd): (f64, f64)) {
    println!(
        "| {model:<26} | {size:>10} | {backend:<22} | {threads:>7} | {test:>12} | {:>20} |",
        format!("{mean:.2} ± {sd:.2}"),
    );
}

fn cpu_backend() -> String {
    format!("nfai-cpu ({})", nfai_models::kernels::kernels().name())
}

fn bench_llm(a: &Args) -> Result<(), String> {
    let (reps, threads) = (a.reps, a.threads);
    let path = a.model.clone().unwrap_or_else(|| {
        nfai_models::default_model_dir()
            .join("gemma-3-270m")
            .join("gemma-3-270m-q4_k_m.gguf")
    });
    let device = nfai_models::device::by_name(&a.device).map_err(|e| e.to_string())?;
    let backend = if device.is_cpu() {
        cpu_backend()
    } else {
        format!("nfai-{}", a.device)
    };
    let file_bytes = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let size = format!("{:.2} MiB", file_bytes as f64 / (1 << 20) as f64);
    let free = || nfai_models::device::gpu_memory(&device).ok().flatten();
    let before = free();
    let started = Instant::now();
    let lm = load_gguf_lm(&path, &device, 4096, None).map_err(|e| e.to_string())?;
    let load_s = started.elapsed().as_secs_f64();
    let vram = match (before, free()) {
        (Some((b, _)), Some((a, _))) => format!(
            ", {:.0} MiB of VRAM",
            b.saturating_sub(a) as f64 / (1 << 20) as f64
        ),
        _ => String::new(),
    };
    let name = path
        .file_stem()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let name: String = name.chars().take(26).collect();
    eprintln!("{name}: loaded in {load_s:.2} s{vram}");
    let model = lm.model.as_ref();
    let mut prompt = lm
        .tokenizer
        .encode(&TEXT.repeat(8 * a.prompt.div_ceil(128)), true)
        .map_err(|e| e.to_string())?;
    if prompt.len() < a.prompt {
        return Err(format!(
            "the text gives {} tokens, not {}",
            prompt.len(),
            a.prompt
        ));
    }
    prompt.truncate(a.prompt);
    for &batch in &a.batches {
        if a.pp {
            let pp = measure(reps, || prefill(model, &device, &prompt, batch))?;
            row(
                &name,
                &size,
                &backend,
                threads,
                &format!("pp{} b{batch}", a.prompt),
                pp,
            );
        }
        if a.tg {
            let tg = measure(reps, || generate(model, &device, batch, 128))?;
            row(
                &name,
                &size,
                &backend,
                threads,
                &format!("tg128 b{batch}"),
                tg,
            );
            if let (1, Some(bw)) = (batch, a.bandwidth_gbs) {
                // Every weight is read once per decode step.
                let bound = bw * 1e9 / file_bytes as f64;
                eprintln!(
                    "decode b1: {:.1} tok/s = {:.0}% of the bandwidth bound {bound:.1} tok/s ({bw} GB/s over {size})",
                    tg.0,
                    tg.0 * 100.0 / bound
                );
            }
        }
    }
    Ok(())
}

/// `batch` sequences of `prompt` in one forward pass; returns the tokens processed.
fn prefill(
    model: &dyn CausalLm,
    device: &Device,
    prompt: &[u32],
    batch: usize,
) -> Result<usize, String> {
    let mut caches: Vec<_> = (0..batch).map(|_| model.new_cache()).collect();
    let mut entries: Vec<BatchEntry<'_>> = caches
        .iter_mut()
        .map(|cache| BatchEntry {
            tokens: prompt,
            cache,
        })
        .collect();
    model.forward(&mut entries).map_err(|e| e.to_string())?;
    device.synchronize().map_err(|e| e.to_string())?;
    Ok(batch * prompt.len())
}

/// `batch` sequences decoding `steps` tokens each from an empty context, one token per
/// sequence per step (the token fed back is fixed, as in llama-bench: sampling is not timed).
fn generate(
    model: &dyn CausalLm,
    device: &Device,
    batch: usize,
    steps: usize,
) -> Result<usize, String> {
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
    device.synchronize().map_err(|e| e.to_string())?;
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
    let gemm = match bert.gemm() {
        "f32" => nfai_models::kernels::f32_gemm_isa(),
        other => other,
    };
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
            &format!("nfai-cpu ({})", gemm),
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
            "| model                      |       size | backend                | threads |         test |                  t/s |"
        );
        println!(
            "| -------------------------- | ---------: | ---------------------- | ------: | -----------: | -------------------: |"
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
