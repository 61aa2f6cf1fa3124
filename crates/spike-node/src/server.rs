//! A [`Node`] as an HTTP service: each request becomes an [`Answer`] from
//! [`Node::answer`], sent with the `X-Spike-Node` header, through the shared
//! accept loop of `spike-http`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Request, Response};
use spike_core::CentralStock;
use spike_http::{serve, Handler, Server, ServerOptions};
use tokio::net::TcpListener;

use crate::node::{Node, NodeRequest};

/// Header naming the node that answered.
pub const NODE_HEADER: &str = "x-spike-node";

/// The HTTP face of a node.
#[derive(Debug)]
pub struct NodeService<C> {
    node: Arc<Node<C>>,
    header: HeaderValue,
}

impl<C: CentralStock> NodeService<C> {
    /// Serves `node`.
    pub fn new(node: Arc<Node<C>>) -> Self {
        let header = HeaderValue::from_str(node.id().as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("node"));
        Self { node, header }
    }
}

impl<C: CentralStock> Handler for NodeService<C> {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
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
            })
            .await;
        let mut response = answer.into_response();
        response
            .headers_mut()
            .insert(NODE_HEADER, self.header.clone());
        response
    }
}

/// Serves `node` on `listener`. After [`Server::shutdown`], call
/// [`Node::close`] to flush the stat log.
pub fn serve_node<C: CentralStock>(
    listener: TcpListener,
    node: Arc<Node<C>>,
    options: ServerOptions,
) -> Server {
    serve(listener, Arc::new(NodeService::new(node)), options)
}
