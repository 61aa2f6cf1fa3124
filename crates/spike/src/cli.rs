//! The command line: the `spike` binary's subcommands and its global
//! flags, as types. Each command's arguments sit beside the command in
//! `commands/`; the groups several share are in `args`. Every flag is a
//! contract users script against (and, through `config`, a setting of a
//! file and a `SPIKE_…` environment variable).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::audit::AuditArgs;
use crate::commands::bench::BenchArgs;
use crate::commands::dashboard::DashboardArgs;
use crate::commands::demo::DemoArgs;
use crate::commands::front::{FrontArgs, NginxConfArgs};
use crate::commands::node::{BaselineArgs, NodeArgs};
use crate::commands::orders::OrdersArgs;
use crate::commands::sale::{SaleCommand, TrainCommand};
use crate::commands::scripts::ScriptsArgs;
use crate::commands::token::TokenArgs;

/// The environment variable that names a configuration file (`--config`).
pub const CONFIG_ENV: &str = "SPIKE_CONFIG";

/// Spike: a flash-sale ticketing engine that sells exactly its stock.
#[derive(Debug, Parser)]
#[command(name = "spike", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// A TOML file of settings for the command, each key a flag's name
    /// (`listen = "0.0.0.0:3005"`, `event = ["a", "b"]`, `no-metrics = true`).
    /// Flags and SPIKE_… environment variables override it.
    #[arg(long, global = true, env = CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the command's effective configuration (flags > environment >
    /// file > defaults, each value's source noted, secrets redacted) and exit.
    #[arg(long, global = true)]
    pub print_config: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect, recover, pause or resume a sale, or read its operator log.
    #[command(subcommand)]
    Sale(SaleCommand),
    /// Read or change a running sale's waiting room (operator key).
    #[command(subcommand)]
    Queue(crate::commands::control::QueueCommand),
    /// Create a train run: seats on route segments, sold by /buy/ticket?train=….
    #[command(subcommand)]
    Train(TrainCommand),
    /// Run a node serving GET|POST /buy/ticket.
    Node(Box<NodeArgs>),
    /// Run the benchmark baseline: a bare hyper server answering the sold-out bytes.
    Baseline(BaselineArgs),
    /// Print an nginx configuration for weighted round robin over nodes.
    NginxConf(NginxConfArgs),
    /// Run the embedded front door: weighted round robin over nodes.
    Front(FrontArgs),
    /// Simulate many users buying through a URL, then report and check invariants.
    Bench(BenchArgs),
    /// The articles' scenario in one process: 4 nodes (1:2:3:4), front door, 1M users, 10k tickets.
    Demo(DemoArgs),
    /// Serve the live sale dashboard for a set of nodes.
    Dashboard(DashboardArgs),
    /// Run the order pipeline: write the order stream into the ledger and expire unpaid orders.
    Orders(OrdersArgs),
    /// Reconcile central stock, the order stream, the ledger and stat logs; exit 1 on any mismatch.
    Audit(AuditArgs),
    /// Print the Lua scripts central stock runs in Redis, exactly as Redis receives them.
    Scripts(ScriptsArgs),
    /// Ask a URL once (a node's /healthz): exit 0 on a 2xx answer, 1 otherwise (the image's health check).
    Probe(crate::commands::probe::ProbeArgs),
    /// Print a signed buyer token (HS256 JWT) for a sale created with --auth token.
    Token(TokenArgs),
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use spike_orders::defaults;

    use super::*;
    use crate::commands::sale::SaleCommand;

    #[test]
    fn server_durations_must_be_longer_than_zero() {
        for flag in ["--head-timeout", "--park-after", "--body-timeout"] {
            let parsed =
                Cli::try_parse_from(["spike", "front", "--upstream", "127.0.0.1:1", flag, "0s"]);
            let error = parsed.expect_err(flag).to_string();
            assert!(error.contains("must be longer than 0"), "{flag}: {error}");
        }
        let parsed = Cli::try_parse_from([
            "spike",
            "front",
            "--upstream",
            "127.0.0.1:1",
            "--park-after",
            "100ms",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn rate_limits_and_trusted_proxies_parse_and_bad_ones_are_refused() {
        let cli = Cli::try_parse_from([
            "spike",
            "node",
            "--event",
            "G1",
            "--stock",
            "5",
            "--rate-limit-per-buyer",
            "10/s",
            "--rate-limit-per-ip",
            "200",
            "--trusted-proxy",
            "127.0.0.1",
            "--trusted-proxy",
            "::1",
        ])
        .unwrap();
        let Command::Node(args) = cli.command else {
            panic!("node")
        };
        assert_eq!(args.rate_limit_per_buyer, NonZeroU32::new(10));
        assert_eq!(args.rate_limit_per_ip, NonZeroU32::new(200));
        assert_eq!(args.trusted_proxies.len(), 2);
        for bad in [
            ["--rate-limit-per-buyer", "0/s"],
            ["--rate-limit-per-ip", "fast"],
            ["--trusted-proxy", "proxy.example"],
        ] {
            let parsed = Cli::try_parse_from(["spike", "node", "--event", "G1", bad[0], bad[1]]);
            assert!(parsed.is_err(), "{bad:?} refused");
        }
        let parsed = Cli::try_parse_from(["spike", "demo", "--admit-rate", "10/s"]);
        assert!(parsed.is_err(), "--admit-rate needs --queue");
        let parsed = Cli::try_parse_from(["spike", "demo"]);
        assert!(parsed.is_ok(), "its defaults need nothing: {parsed:?}");
    }

    #[test]
    fn pipeline_flags_default_to_the_pipelines_defaults() {
        let cli = Cli::try_parse_from([
            "spike",
            "orders",
            "--redis",
            "r",
            "--database-url",
            "sqlite::memory:",
        ])
        .unwrap();
        let Command::Orders(args) = cli.command else {
            panic!("orders")
        };
        assert_eq!(args.pipeline.batch, defaults::BATCH);
        assert_eq!(args.pipeline.lanes, defaults::LANES);
        assert_eq!(
            Duration::from(args.pipeline.claim_idle),
            defaults::CLAIM_IDLE
        );
        assert_eq!(
            Duration::from(args.pipeline.expire_every),
            defaults::EXPIRE_EVERY
        );
        assert!(!args.pipeline.no_expiry);
    }

    #[test]
    fn help_never_shows_a_url_from_the_environment() {
        use clap::CommandFactory;
        // Help output is rendered without touching the process environment:
        // every argument that reads a URL from it hides the value.
        let command = Cli::command();
        for sub in command
            .get_subcommands()
            .flat_map(|c| std::iter::once(c).chain(c.get_subcommands()))
        {
            for arg in sub.get_arguments() {
                let from_env = arg.get_env().and_then(|name| name.to_str());
                if matches!(from_env, Some("SPIKE_REDIS" | "SPIKE_DATABASE_URL")) {
                    assert!(
                        arg.is_hide_env_values_set(),
                        "{} --{:?} would print its URL in --help",
                        sub.get_name(),
                        arg.get_long()
                    );
                }
            }
        }
    }

    #[test]
    fn sale_flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "spike",
            "sale",
            "create",
            "--redis",
            "redis://x",
            "--event",
            "G1",
            "--stock",
            "10",
            "--per-user-limit",
            "2",
            "--payment-window",
            "3s",
            "--opens-at",
            "2026-12-01T08:00:00Z",
        ])
        .unwrap();
        let Command::Sale(SaleCommand::Create(args)) = cli.command else {
            panic!("parsed as another command");
        };
        let config = args.rules.to_config().unwrap();
        assert_eq!(config.total(), 10);
        assert_eq!(config.payment_window(), Duration::from_secs(3));
        assert_eq!(
            config.policy().per_user_limit().map(NonZeroU32::get),
            Some(2)
        );
        assert!(config.opens_at().is_some());
    }

    #[test]
    fn bad_flags_are_refused_by_the_parser() {
        for args in [
            vec![
                "spike", "sale", "create", "--redis", "r", "--event", "a b", "--stock", "1",
            ],
            vec![
                "spike",
                "sale",
                "create",
                "--redis",
                "r",
                "--event",
                "e",
                "--per-user-limit",
                "0",
            ],
            vec!["spike", "node", "--payment-window", "soon"],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
    }
}
