//! `spike dashboard`: the live sale page for a set of running nodes.

use anyhow::Context;
use spike_dashboard::{serve_dashboard, DashboardConfig};

use super::shutdown_signal;
use crate::args::ServerArgs;
use clap::Args;
use spike_core::EventId;
use std::net::SocketAddr;

/// `spike dashboard`
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address to listen on; the page is at /dashboard.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// A node's admin address to watch, HOST:PORT (its --admin-listen; repeatable).
    #[arg(long = "node", required = true)]
    pub nodes: Vec<String>,
    /// The event whose progress is shown (default: the nodes' default event).
    #[arg(long)]
    pub event: Option<EventId>,
    /// Connection limits.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Serves the dashboard until SIGINT/SIGTERM.
pub async fn run_dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    let listener = spike_http::listen(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut config = DashboardConfig::new(args.nodes);
    config.event = args.event.map(|e| e.to_string());
    config.server = args.server.options(config.server.grace);
    let dashboard = serve_dashboard(listener, config);
    tracing::info!(url = %format!("http://{}/dashboard", dashboard.addr()), "dashboard listening");
    shutdown_signal().await?;
    dashboard.shutdown().await;
    Ok(())
}
