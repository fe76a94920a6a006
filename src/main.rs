//! The `camgate` binary: command line, logging, runtime, signals. Wiring only.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing::{error, info, warn};

use camgate::cli::{Cli, Command};
use camgate::{app, config, summary, telemetry};

/// How long shutdown may take before camgate exits anyway.
const GRACE: Duration = Duration::from_secs(4);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Nft { config } => nft(&config),
        Command::Inventory { config, format } => {
            if let Err(e) =
                telemetry::init(Some(cli.log.as_deref().unwrap_or("error")), cli.log_format)
            {
                eprintln!("camgate: {e}");
                return ExitCode::from(1);
            }
            inventory(&config, format)
        }
        Command::Run { config } => {
            if let Err(e) = telemetry::init(cli.log.as_deref(), cli.log_format) {
                eprintln!("camgate: {e}");
                return ExitCode::from(1);
            }
            run(&config)
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            println!("{}: OK", path.display());
            print!("{}", summary::render(&loaded.config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            for w in &e.warnings {
                println!("warning: {w}");
            }
            for p in &e.problems {
                println!("error: {p}");
            }
            println!("{}: {} error(s)", path.display(), e.problems.len());
            ExitCode::from(1)
        }
    }
}

/// Loads the configuration; on problems, prints each (as `camgate check`
/// does, on stderr) and gives the exit code.
fn load_or_report(path: &std::path::Path) -> Result<config::Loaded, ExitCode> {
    config::load(path).map_err(|e| {
        for p in &e.problems {
            eprintln!("error: {p}");
        }
        eprintln!("{}: {} error(s)", path.display(), e.problems.len());
        ExitCode::from(1)
    })
}

fn inventory(path: &std::path::Path, format: camgate::inventory::Format) -> ExitCode {
    use camgate::inventory::{self, Origin};
    let loaded = match load_or_report(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("camgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cfg = &loaded.config;
    let timeout = Duration::from_secs(cfg.inspect.probe_timeout_secs);
    let (json, origin) = rt.block_on(async {
        match inventory::from_api(cfg, Duration::from_secs(3)).await {
            Some(j) => (j, Origin::Api),
            None => (inventory::from_probes(cfg, timeout).await, Origin::Probe),
        }
    });
    print!(
        "{}",
        inventory::render(&inventory::rows(&json), format, origin)
    );
    ExitCode::SUCCESS
}

fn nft(path: &std::path::Path) -> ExitCode {
    let loaded = match load_or_report(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match camgate::egress::nft::render(&loaded.config) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("camgate nft: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => {
            for p in &e.problems {
                error!(problem = %p, "invalid configuration");
            }
            error!(file = %path.display(), "not starting: fix the configuration (camgate check --config FILE)");
            return ExitCode::from(1);
        }
    };
    for w in &loaded.warnings {
        warn!(warning = %w, "configuration");
    }
    match camgate::sys::raise_nofile_limit() {
        Ok((old, new)) if new > old => info!(old, new, "raised the open-file limit"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot raise the open-file limit"),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(serve(loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "camgate failed");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: config::Config) -> anyhow::Result<()> {
    let running = app::start(config).await.context("starting camgate")?;
    wait_for_signal()
        .await
        .context("installing signal handlers")?;
    info!("shutting down");
    // A second signal exits at once.
    tokio::spawn(async {
        if wait_for_signal().await.is_ok() {
            warn!("second signal: exiting now");
            std::process::exit(0);
        }
    });
    if !running.shutdown(GRACE).await {
        warn!("shutdown grace period over: exiting anyway");
    }
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
