//! The `nfai` binary: parses the command line, sets up logging and runs a command.

#![forbid(unsafe_code)]

use clap::Parser;
use nfai_router::config::{Cli, Command, Config, IndexArgs, ModelsCommand};
use nfai_router::fetch::{FetchOptions, fetch_models};
use nfai_router::{Application, shutdown_signal};

fn main() -> std::process::ExitCode {
    if let Err(e) = nfai_models::kernels::check_cpu() {
        eprintln!("nfai: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let logging = nfai_router::logging::init();
    let cli = Cli::parse();
    // A server's configuration is read, and the compute pools sized, before any other thread
    // exists.
    let config = match &cli.command {
        Command::Serve(args) | Command::Index(IndexArgs { serve: args, .. }) => {
            match Config::from_serve_args(args) {
                Ok(config) => {
                    logging.apply(config.reserved.log_format);
                    nfai_models::kernels::init_compute_pool(config.engine.threads);
                    Some(config)
                }
                Err(e) => {
                    eprintln!("nfai: {e:#}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nfai: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nfai: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Option<Config>) -> anyhow::Result<()> {
    match (cli.command, config) {
        (Command::Serve(_), Some(config)) => {
            let started = std::time::Instant::now();
            tracing::info!(
                threads = config.engine.threads,
                kernels = nfai_models::kernels::kernels().name(),
                f32_gemm = nfai_models::kernels::f32_gemm_isa(),
                embed_gemm = nfai_models::bert::cpu_gemm(),
                e5_gemm = nfai_models::e5::cpu_gemm(),
                "compute pool"
            );
            let app = Application::build(config).await?;
            tracing::info!(addr = %app.local_addr()?, "listening; preloading models");
            let state = app.state().clone();
            tokio::spawn(async move {
                match nfai_router::app::wait_ready(&state).await {
                    Ok(()) => tracing::info!(
                        ready_ms = started.elapsed().as_millis() as u64,
                        "nfai is ready"
                    ),
                    Err(e) => tracing::error!("preload failed: {e:#}"),
                }
            });
            app.run_until(shutdown_signal()).await?;
            Ok(())
        }
        (Command::Index(args), Some(config)) => {
            nfai_router::index_cli::run(config, args.source).await
        }
        (Command::Serve(_) | Command::Index(_), None) => anyhow::bail!("no configuration"),
        (
            Command::Models {
                command: ModelsCommand::Fetch(args),
            },
            _,
        ) => fetch(args).await,
        (
            Command::Models {
                command: ModelsCommand::Synth(args),
            },
            _,
        ) => tokio::task::spawn_blocking(move || synth(args)).await?,
        (Command::Models { command }, _) => nfai_router::admin_cli::run(command).await,
        (Command::Keys { command }, _) => {
            tokio::task::spawn_blocking(move || nfai_router::keys_cli::run(command)).await?
        }
        (Command::Openapi, _) => {
            print!("{}", nfai_router::api::openapi::document_json());
            Ok(())
        }
    }
}

fn synth(args: nfai_router::config::SynthArgs) -> anyhow::Result<()> {
    use nfai_models::synth::{SynthShape, parse_dtype, write_synthetic};
    use std::io::IsTerminal;
    let mut shape = SynthShape::preset(&args.shape).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown shape {:?}; one of: {}",
            args.shape,
            SynthShape::PRESETS.join(", ")
        )
    })?;
    if let Some(n) = args.layers {
        anyhow::ensure!(n >= 1, "--layers must be at least 1");
        shape.layers = n;
    }
    let dtype = parse_dtype(&args.quant).ok_or_else(|| {
        anyhow::anyhow!("unknown --quant {:?}: q4_k, q6_k, q8_0 or q4_0", args.quant)
    })?;
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let size = write_synthetic(
        &args.out,
        &args.shape,
        &shape,
        dtype,
        args.seed,
        |done, all| {
            if tty {
                eprint!(
                    "\r{:>5.1}% of {:.2} GB",
                    done as f64 * 100.0 / all as f64,
                    all as f64 / 1e9
                );
            }
        },
    )?;
    if tty {
        eprintln!();
    }
    println!(
        "wrote {} ({} at {dtype:?}, {} layers): {size} bytes in {:.1} s",
        args.out.display(),
        args.shape,
        shape.layers,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn fetch(args: nfai_router::config::FetchArgs) -> anyhow::Result<()> {
    let (catalog, dir) = Config::catalog_and_dir(&args.common)?;
    let entries: Vec<_> = if args.ids.is_empty() {
        catalog
            .entries()
            .iter()
            .filter(|e| e.source.is_some())
            .collect()
    } else {
        args.ids
            .iter()
            .map(|id| {
                catalog
                    .resolve(id)
                    .ok_or_else(|| anyhow::anyhow!("unknown model {id:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let opts = FetchOptions {
        verify: args.verify,
        find_links: args.find_links,
    };
    // The fetch reports each model's outcome itself.
    fetch_models(&entries, &dir, opts).await?;
    Ok(())
}
