//! What each subcommand does, once its arguments are parsed.

mod audit;
mod bench;
mod dashboard;
mod demo;
mod front;
mod node;
mod orders;
mod sale;

pub use audit::run_audit;
pub use bench::run_bench;
pub use dashboard::run_dashboard;
pub use demo::run_demo;
pub use front::{print_nginx_conf, run_front};
pub use node::{run_baseline, run_node};
pub use orders::run_orders;
pub use sale::{sale_create, sale_recover, sale_show};

use anyhow::Context;
use spike_redis::{RedisCentral, RedisSettings};

/// Connects to Redis, saying which URL failed.
async fn redis(url: &str) -> anyhow::Result<RedisCentral> {
    RedisCentral::connect(&RedisSettings::new(url))
        .await
        .with_context(|| format!("cannot reach Redis at {url}"))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// `redis://user:secret@host:6379` → `redis://***@host:6379`: logs and
/// errors carry no secrets.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("postgres://me:secret@db/spike"),
            "postgres://***@db/spike"
        );
    }
}
