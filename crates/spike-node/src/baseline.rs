//! The benchmark baseline: the smallest hyper server that answers every
//! request with the node's sold-out bytes and headers. A node's sold-out
//! path is measured against it in the same run. Also the bare `/metrics`
//! server of processes that are not nodes (`spike orders`).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::answer::SOLD_OUT_BODY;
use crate::server::NODE_HEADER;

/// Answers `{"code":-1,"msg":"sold out"}` to every request, forever.
pub async fn serve_baseline(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                let mut response = Response::new(Full::new(Bytes::from_static(SOLD_OUT_BODY)));
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(NODE_HEADER, HeaderValue::from_static("baseline"));
                Ok::<_, Infallible>(response)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answers every request with this process's Prometheus metrics, forever.
pub async fn serve_metrics(listener: TcpListener) -> std::io::Result<()> {
    let _ = spike_telemetry::prometheus();
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                let mut response = Response::new(Full::new(Bytes::from(spike_telemetry::render())));
                let content_type = HeaderValue::from_static("text/plain; version=0.0.4");
                response.headers_mut().insert(CONTENT_TYPE, content_type);
                Ok::<_, Infallible>(response)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
