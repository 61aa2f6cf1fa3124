//! The bare metrics server of processes that are not nodes (`spike orders`,
//! the front door): this process's Prometheus metrics at `GET /metrics`, on
//! an admin address of its own.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use tokio::net::TcpListener;

use crate::answer::Answer;
use crate::server::{serve, Server, ServerOptions};

/// Serves this process's Prometheus metrics at `GET /metrics`.
pub fn serve_metrics(listener: TcpListener, options: ServerOptions) -> Server {
    let _ = spike_telemetry::prometheus();
    let handler = |request: Request<Incoming>| async move {
        let answer = match (request.method(), request.uri().path()) {
            (&Method::GET, "/metrics") => Answer::Metrics(spike_telemetry::render()),
            (_, "/metrics") => Answer::MethodNotAllowed { allowed: "GET" },
            (_, path) => Answer::no_such_path(path, "/metrics"),
        };
        let response: Response<Full<Bytes>> = answer.into_response();
        response
    };
    serve(listener, Arc::new(handler), options)
}
