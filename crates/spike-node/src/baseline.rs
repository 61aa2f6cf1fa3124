//! The benchmark baseline: the smallest server that answers every request
//! with the node's sold-out bytes and headers, through the same accept loop
//! as a node but with its head timer and connection cap off
//! ([`ServerOptions::bare`]), so that it is bare hyper. A node's sold-out
//! path is measured against it in the same run.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use spike_http::{serve, Server, ServerOptions};

use crate::answer::SOLD_OUT_BODY;
use tokio::net::TcpListener;

use crate::server::NODE_HEADER;

/// Serves `{"code":-1,"msg":"sold out"}` to every request, as bare hyper
/// (only `options.grace` is used).
pub fn serve_baseline(listener: TcpListener, options: ServerOptions) -> Server {
    let options = ServerOptions {
        grace: options.grace,
        ..ServerOptions::bare()
    };
    let handler = |_request: Request<Incoming>| async {
        let mut response = Response::new(Full::new(Bytes::from_static(SOLD_OUT_BODY)));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(NODE_HEADER, HeaderValue::from_static("baseline"));
        response
    };
    serve(listener, Arc::new(handler), options)
}
