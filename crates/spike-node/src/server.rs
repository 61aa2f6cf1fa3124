//! A [`Node`] as an HTTP service: each request becomes an [`Answer`] from
//! [`Node::answer`], sent with the `X-Spike-Node` header, through the shared
//! accept loop of `spike-http`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::answer::Answer;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Request, Response, StatusCode};
use spike_core::CentralStock;
use spike_http::{declares_body_over, serve, Handler, Server, ServerOptions};
use tokio::net::TcpListener;

use crate::node::{Node, NodeRequest};
use crate::routes::Surface;

/// Header naming the node that answered.
pub const NODE_HEADER: &str = "x-spike-node";

/// One HTTP face of a node: its public or its admin surface.
#[derive(Debug)]
pub struct NodeService<C> {
    node: Arc<Node<C>>,
    header: HeaderValue,
    surface: Surface,
    max_body_bytes: usize,
}

impl<C: CentralStock> NodeService<C> {
    /// Serves `node`'s `surface`, refusing bodies over `max_body_bytes`
    /// (no route reads one; a declared larger one is refused unread).
    pub fn new(node: Arc<Node<C>>, surface: Surface, max_body_bytes: usize) -> Self {
        let header = HeaderValue::from_str(node.id().as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("node"));
        Self {
            node,
            header,
            surface,
            max_body_bytes,
        }
    }
}

impl<C: CentralStock> Handler for NodeService<C> {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if declares_body_over(request.headers(), self.max_body_bytes) {
            let refusal = Answer::refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {} bytes", self.max_body_bytes),
            );
            let path = request.uri().path();
            return self.respond(self.node.refused_unread(path, self.surface, refusal));
        }
        let uri = request.uri();
        let bearer = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let answer = self
            .node
            .answer(NodeRequest {
                method: request.method(),
                path: uri.path(),
                query: uri.query(),
                bearer,
                surface: self.surface,
                client: self.node.client(peer, request.headers()),
            })
            .await;
        self.respond(answer)
    }
}

impl<C> NodeService<C> {
    /// The response carrying `answer`, with the node's header.
    fn respond(&self, answer: Answer) -> Response<Full<Bytes>> {
        let mut response = answer.into_response();
        response
            .headers_mut()
            .insert(NODE_HEADER, self.header.clone());
        response
    }
}

/// Serves `node`'s `surface` on `listener`. After [`Server::shutdown`] of
/// every surface, call [`Node::close`] to flush the stat log.
pub fn serve_node<C: CentralStock>(
    listener: TcpListener,
    node: Arc<Node<C>>,
    surface: Surface,
    options: ServerOptions,
) -> Server {
    let service = NodeService::new(node, surface, options.max_body_bytes);
    serve(listener, Arc::new(service), options)
}
