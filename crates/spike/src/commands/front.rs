//! `spike nginx-conf` (the production front door's configuration) and
//! `spike front` (the embedded front door).

use anyhow::Context;
use spike_front::nginx::{render, NginxOptions};
use spike_front::{serve_front, FrontConfig};
use spike_http::ServerOptions;

use super::shutdown_signal;
use crate::args::ServerArgs;
use clap::Args;
use spike_front::Upstream;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

/// `spike nginx-conf`
#[derive(Debug, Args)]
pub struct NginxConfArgs {
    /// nginx `listen` value, e.g. 127.0.0.1:8080 or 80.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A node and its weight, HOST:PORT=WEIGHT (repeatable).
    #[arg(long = "upstream", required = true)]
    pub upstreams: Vec<Upstream>,
    /// nginx worker_processes: auto or a number (1 makes the split exact request by request).
    #[arg(long, default_value = "auto")]
    pub workers: String,
    /// Write an access log (off by default).
    #[arg(long)]
    pub access_log: bool,
    /// Requests one node is sent at once (nginx max_conns); the edge takes
    /// this many per node at once and answers the rest 503 (code -5,
    /// Retry-After) at once. Default: a node's own bound.
    #[arg(long, default_value_t = spike_front::DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM)]
    pub max_in_flight_per_node: NonZeroUsize,
    /// Write the configuration to this file instead of standard output (a
    /// container image has no shell to redirect with).
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// `spike front`
#[derive(Debug, Args)]
pub struct FrontArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the front door's own /metrics (loopback by default; port 0: any free port, logged).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub admin_listen: SocketAddr,
    /// A node and its weight, HOST:PORT=WEIGHT (repeatable).
    #[arg(long = "upstream", required = true)]
    pub upstreams: Vec<Upstream>,
    /// Requests that may wait on one node at once; a full node is passed
    /// over, and when every node is full the request is answered 503 with
    /// Retry-After at once (overload shedding). Default: a node's own bound.
    #[arg(long, default_value_t = spike_front::DEFAULT_MAX_IN_FLIGHT_PER_UPSTREAM)]
    pub max_in_flight_per_upstream: NonZeroUsize,
    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Connection limits.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Prints the nginx configuration on stdout.
pub fn print_nginx_conf(args: NginxConfArgs) -> anyhow::Result<()> {
    let options = NginxOptions {
        listen: args.listen,
        workers: args.workers,
        access_log: args.access_log,
        max_in_flight_per_node: args.max_in_flight_per_node.get(),
    };
    let config = render(&options, &args.upstreams);
    match &args.output {
        None => print!("{config}"),
        Some(path) => std::fs::write(path, config)
            .with_context(|| format!("cannot write {}", path.display()))?,
    }
    Ok(())
}

/// Serves the embedded front door until SIGINT/SIGTERM.
pub async fn run_front(args: FrontArgs) -> anyhow::Result<()> {
    let listener = spike_http::listen(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let upstreams: Vec<String> = args.upstreams.iter().map(ToString::to_string).collect();
    let mut config = FrontConfig::new(args.upstreams);
    config.server = args.server.options(config.server.grace);
    config.max_in_flight_per_upstream = args.max_in_flight_per_upstream;
    let front = serve_front(listener, config)?;
    let admin_listener = spike_http::listen(args.admin_listen)
        .with_context(|| format!("cannot listen on {}", args.admin_listen))?;
    let admin = spike_http::serve_metrics(admin_listener, ServerOptions::default());
    tracing::info!(%addr, admin = %admin.addr(), upstreams = ?upstreams, "front door listening");
    shutdown_signal().await?;
    front.shutdown().await;
    admin.shutdown().await;
    Ok(())
}
