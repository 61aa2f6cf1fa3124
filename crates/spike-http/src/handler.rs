//! What a server does with one request: the [`Handler`] every Spike server
//! gives the accept loop ([`crate::server::serve`]), and the closures that
//! are handlers too.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

/// What a server does with one request.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request, which came from `peer` (the other end of the
    /// TCP connection: the client, or a proxy in front of it).
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// A closure is a handler that does not ask who is calling.
impl<F, Fut> Handler for F
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send,
{
    fn handle(
        &self,
        request: Request<Incoming>,
        _peer: SocketAddr,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        self(request)
    }
}
