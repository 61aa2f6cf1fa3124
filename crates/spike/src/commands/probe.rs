//! `spike probe URL`: exits 0 when a Spike server answers `URL` (its
//! `/healthz`, say) with 2xx within the deadline, 1 otherwise: the
//! container image's health check, which has no shell or curl.

use std::time::Duration;

use clap::Args;
use hyper::Method;

use super::http_client::exchange;

/// `spike probe`
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to ask, e.g. http://127.0.0.1:8080/healthz.
    pub url: String,
    /// How long to wait for the answer.
    #[arg(long, default_value = "2s")]
    pub timeout: humantime::Duration,
}

/// Asks once; an answer other than 2xx, or none, is an error.
pub async fn run_probe(args: ProbeArgs) -> anyhow::Result<()> {
    let deadline: Duration = args.timeout.into();
    let (status, _) = exchange(Method::GET, &args.url, None, deadline).await?;
    anyhow::ensure!(status.is_success(), "{} answered {status}", args.url);
    Ok(())
}
