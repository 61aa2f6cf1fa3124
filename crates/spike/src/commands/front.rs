//! `spike nginx-conf` (the production front door's configuration) and
//! `spike front` (the embedded front door).

use anyhow::Context;
use spike_front::nginx::{render, NginxOptions};
use spike_front::{serve_front, FrontConfig};
use spike_http::ServerOptions;
use tokio::net::TcpListener;

use super::shutdown_signal;
use crate::cli::{FrontArgs, NginxConfArgs};

/// Prints the nginx configuration on stdout.
pub fn print_nginx_conf(args: NginxConfArgs) -> anyhow::Result<()> {
    let options = NginxOptions {
        listen: args.listen,
        workers: args.workers,
        access_log: args.access_log,
    };
    print!("{}", render(&options, &args.upstreams));
    Ok(())
}

/// Serves the embedded front door until SIGINT/SIGTERM.
pub async fn run_front(args: FrontArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let upstreams: Vec<String> = args.upstreams.iter().map(ToString::to_string).collect();
    let mut config = FrontConfig::new(args.upstreams);
    config.server = args.server.options(config.server.grace);
    config.max_in_flight_per_upstream = args.max_in_flight_per_upstream;
    let front = serve_front(listener, config)?;
    let admin_listener = TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.admin_listen))?;
    let admin = spike_http::serve_metrics(admin_listener, ServerOptions::default());
    tracing::info!(%addr, admin = %admin.addr(), upstreams = ?upstreams, "front door listening");
    shutdown_signal().await?;
    front.shutdown().await;
    admin.shutdown().await;
    Ok(())
}
