//! The one HTTP client the commands use to talk to a running node: one
//! request with an empty body, an optional bearer key, a deadline, and the
//! JSON answer read back (`spike sale pause`, `spike queue …`, `spike probe`).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Sends `method url` (with `Authorization: Bearer key` when given) and
/// returns the status and the body as JSON (`Null` when it is not JSON),
/// or fails after `deadline`.
pub async fn exchange(
    method: Method,
    url: &str,
    key: Option<&str>,
    deadline: Duration,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(key) = key {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request =
        (request.body(Empty::<Bytes>::new())).with_context(|| format!("{url} is not a URL"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let answered = async {
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    };
    tokio::time::timeout(deadline, answered)
        .await
        .with_context(|| format!("no answer from {url} within {deadline:?}"))?
        .with_context(|| format!("no answer from {url}"))
}
