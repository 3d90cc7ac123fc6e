//! Writes a synthetic GGUF, as `nfai models synth` does (the same function and arguments),
//! without building the router: `cargo run -p nfai-models --example synth_gguf -- --shape
//! llama-tiny --quant q4_1 --seed 7 --out /tmp/llama-tiny.gguf`.

use nfai_models::synth::{SynthShape, parse_dtype, write_synthetic};
use nfai_models::{ModelError, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str| -> Option<&str> {
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1).map(String::as_str)
    };
    let usage = || ModelError::Input("usage: --shape S --quant Q --seed N --out FILE".into());
    let name = arg("--shape").ok_or_else(usage)?;
    let shape = SynthShape::preset(name).ok_or_else(|| {
        ModelError::Input(format!(
            "unknown shape {name}; one of: {}",
            SynthShape::PRESETS.join(", ")
        ))
    })?;
    let quant = arg("--quant").unwrap_or("q4_k");
    let dtype = parse_dtype(quant).ok_or_else(|| ModelError::Input(format!("--quant {quant}")))?;
    let seed = arg("--seed")
        .map_or(Ok(0), str::parse)
        .map_err(|_| usage())?;
    let out = std::path::PathBuf::from(arg("--out").ok_or_else(usage)?);
    let size = write_synthetic(&out, name, &shape, dtype, seed, |_, _| {})?;
    println!("wrote {} ({size} bytes)", out.display());
    Ok(())
}
