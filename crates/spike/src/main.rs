//! The `spike` binary: reads its configuration (flags, environment, file),
//! sets up logging and the runtime,
//! runs one subcommand, and turns its error into a message and exit code 1.

use std::num::NonZeroUsize;
use std::process::ExitCode;

use spike::cli::{Command, LogFormat};
use spike::commands;
use spike::commands::sale::{SaleCommand, TrainCommand};
use spike::config::{self, ConfigError};
use spike::flags;

fn runtime(threads: Option<NonZeroUsize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Turns "an invariant failed" into an error, so that the exit code says it.
fn invariants(held: anyhow::Result<bool>) -> anyhow::Result<()> {
    match held? {
        true => Ok(()),
        false => Err(anyhow::anyhow!(
            "an invariant failed (see the report above)"
        )),
    }
}

fn main() -> ExitCode {
    let loaded = match config::load(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(ConfigError::Arguments(error)) => error.exit(),
        Err(error) => {
            eprintln!("spike: {error}");
            return ExitCode::from(2);
        }
    };
    if loaded.cli.print_config {
        print!("{}", loaded.to_toml());
        return ExitCode::SUCCESS;
    }
    let cli = loaded.cli;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // sqlx's warnings are slow-statement notices (each with the whole
        // statement: a batch of 1,000 rows is 50 KB of text); its errors and
        // ours still show. RUST_LOG=sqlx=warn brings them back.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=error"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let threads = match &cli.command {
        Command::Node(args) => args.threads,
        Command::Baseline(args) => args.threads,
        Command::Front(args) => args.threads,
        Command::Sale(_)
        | Command::Queue(_)
        | Command::Train(_)
        | Command::NginxConf(_)
        | Command::Audit(_)
        | Command::Scripts(_)
        | Command::Token(_)
        | Command::Probe(_) => NonZeroUsize::new(1),
        Command::Bench(_) | Command::Demo(_) | Command::Dashboard(_) | Command::Orders(_) => None,
    };
    let result = runtime(threads)
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                match cli.command {
                    Command::Sale(SaleCommand::Create(args)) => commands::sale_create(args).await,
                    Command::Sale(SaleCommand::Show(args)) => commands::sale_show(args).await,
                    Command::Sale(SaleCommand::Recover(args)) => commands::sale_recover(args).await,
                    Command::Sale(SaleCommand::Pause(args)) => commands::sale_pause(args).await,
                    Command::Sale(SaleCommand::Resume(args)) => commands::sale_resume(args).await,
                    Command::Sale(SaleCommand::Log(args)) => commands::sale_log(args).await,
                    Command::Queue(command) => commands::run_queue(command).await,
                    Command::Train(TrainCommand::Create(args)) => {
                        commands::train_create(args).await
                    }
                    Command::Orders(args) => commands::run_orders(args).await,
                    Command::Audit(args) => invariants(commands::run_audit(args).await),
                    Command::Node(args) => commands::run_node(*args).await,
                    Command::Baseline(args) => commands::run_baseline(args).await,
                    Command::NginxConf(args) => commands::print_nginx_conf(args),
                    Command::Front(args) => commands::run_front(args).await,
                    Command::Bench(args) => invariants(commands::run_bench(args).await),
                    Command::Demo(args) => invariants(commands::run_demo(args).await),
                    Command::Dashboard(args) => commands::run_dashboard(args).await,
                    Command::Scripts(args) => commands::print_scripts(args),
                    Command::Token(args) => commands::print_token(args),
                    Command::Probe(args) => commands::run_probe(args).await,
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spike: {}", flags::explain(&error));
            ExitCode::FAILURE
        }
    }
}
