//! One place that wires a node: [`NodeApp::build`] binds the listener,
//! names the node, opens its stat log, connects the orders API to the
//! ledger, starts the order pipeline when asked, and serves it all. `spike
//! node`, `spike demo` and the integration tests (`spawn_node`) build nodes
//! here and nowhere else.

mod orders_http;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spike_auth::{
    AdmissionKeys, JoinWork, KeyRing, OperatorKey, OrderKeys, SecretKey, TokenVerifier, WorkError,
};
use spike_core::{CentralStock, IdError, NodeId, OrderStream, SecretUrl};
use spike_http::{Server, ServerOptions};
use spike_node::stat_log::{StatLogError, DEFAULT_QUEUE_LINES};
use spike_node::{serve_node, Node, NodeConfig, NodeError, NodeParts, OrdersApi, StatLog, Surface};
use spike_orders::{LedgerError, OrderDesk, OrderLedger, Pipeline, PipelineConfig};
use tokio::net::TcpListener;

pub use orders_http::{order_json, OrdersHttp, MAX_USER_ORDERS};

/// How long a stopping node waits for open connections by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Where a node's order ledger comes from.
#[derive(Debug, Clone)]
pub enum LedgerSource {
    /// Open it: `postgres://…` or `sqlite:…`.
    Url(SecretUrl),
    /// Share one this process already opened (the demo, tests).
    Open(OrderLedger),
}

/// The orders API (and, optionally, the order pipeline) of a node.
#[derive(Debug, Clone)]
pub struct OrdersSettings {
    /// The order ledger.
    pub ledger: LedgerSource,
    /// Run the order pipeline (writer and expiry) inside the node too.
    pub pipeline: Option<PipelineConfig>,
}

/// Everything a node process is made of, as typed settings.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Where buyers reach the node (port 0: any free port).
    pub listen: SocketAddr,
    /// Where operators read metrics, stats and the sale (loopback by default;
    /// port 0: any free port).
    pub admin_listen: SocketAddr,
    /// What the node serves and how it refreshes; its `node_id` is used
    /// unless `name_after_port`.
    pub node: NodeConfig,
    /// Name the node `node-PORT` after binding (the CLI's default).
    pub name_after_port: bool,
    /// Append one line per answered purchase to this file.
    pub stat_log: Option<PathBuf>,
    /// Lines the stat log may queue before purchases are refused (503).
    pub stat_log_queue: u64,
    /// Serve the orders API from a ledger.
    pub orders: Option<OrdersSettings>,
    /// The keys buyer tokens are signed with (needed to serve token sales).
    pub token_keys: Option<KeyRing>,
    /// The keys of order keys; every node of a sale needs the same. Without
    /// them, the node makes a random key, and its order keys open orders on
    /// this node only.
    pub order_keys: Option<KeyRing>,
    /// The operator's keys: the payment service confirms payments with
    /// one, and an operator gives live controls with one (without them,
    /// neither is possible on this node).
    pub operator_keys: Option<KeyRing>,
    /// Zero bits of proof of work a waiting room's join must carry
    /// (`--join-work`; none by default).
    pub join_work_bits: Option<u8>,
    /// How both listeners treat connections (timeouts, caps, grace).
    pub server: ServerOptions,
}

impl NodeSettings {
    /// A node named `node_id` on `listen`, no stat log, no orders API.
    pub fn new(listen: SocketAddr, node: NodeConfig) -> Self {
        Self {
            listen,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            node,
            name_after_port: false,
            stat_log: None,
            stat_log_queue: DEFAULT_QUEUE_LINES,
            orders: None,
            token_keys: None,
            order_keys: None,
            operator_keys: None,
            join_work_bits: None,
            server: ServerOptions::with_grace(DEFAULT_GRACE),
        }
    }
}

/// Why a node could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A derived name (node or consumer) is not a valid id.
    #[error(transparent)]
    Name(#[from] IdError),
    /// The stat log could not be opened.
    #[error(transparent)]
    StatLog(#[from] StatLogError),
    /// The order ledger could not be opened.
    #[error("cannot open the order ledger at {url}: {source}")]
    Ledger {
        /// The ledger, without its password.
        url: SecretUrl,
        /// Why.
        source: LedgerError,
    },
    /// The node could not load its sales.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// No random key could be made.
    #[error("cannot read random bytes for order keys: {0}")]
    Random(std::io::Error),
    /// The join work's difficulty is out of range.
    #[error("--join-work: {0}")]
    JoinWork(#[from] WorkError),
}

/// A running node: its public and admin servers, and its pipeline if it runs one.
#[derive(Debug)]
pub struct NodeApp<C> {
    node: Arc<Node<C>>,
    server: Server,
    admin: Server,
    pipeline: Option<Pipeline>,
}

/// Binds `addr`, naming it if that fails.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), AppError> {
    let listen_error = |source| AppError::Listen { addr, source };
    let listener = spike_http::listen(addr).map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    Ok((listener, bound))
}

impl<C> NodeApp<C>
where
    C: CentralStock + OrderStream + Clone + Debug,
{
    /// Builds and starts a node on `central` as `settings` describe.
    pub async fn build(settings: NodeSettings, central: C) -> Result<Self, AppError> {
        let (listener, addr) = bind(settings.listen).await?;
        let (admin_listener, _) = bind(settings.admin_listen).await?;
        let mut config = settings.node;
        if settings.name_after_port {
            config.node_id = NodeId::parse(format!("node-{}", addr.port()))?;
        }
        let stat_log = match &settings.stat_log {
            Some(path) => Some(StatLog::open_with_queue(
                path,
                config.node_id.clone(),
                settings.stat_log_queue,
            )?),
            None => None,
        };
        let ledger = match &settings.orders {
            Some(OrdersSettings {
                ledger: LedgerSource::Url(url),
                ..
            }) => Some(open_ledger(url).await?),
            Some(OrdersSettings {
                ledger: LedgerSource::Open(ledger),
                ..
            }) => Some(ledger.clone()),
            None => None,
        };
        let order_keys = match settings.order_keys {
            Some(keys) => keys,
            None => {
                tracing::warn!(
                    "no --order-key-file: order keys from this node open orders on this node only"
                );
                random_keys()?
            }
        };
        let api = ledger.clone().map(|ledger| {
            let desk = OrderDesk::new(ledger, central.clone());
            let keys = Some(OrderKeys::new(order_keys.clone()));
            Arc::new(OrdersHttp::new(desk, keys)) as Arc<dyn OrdersApi>
        });
        let join_work = (settings.join_work_bits)
            .map(|bits| JoinWork::new(order_keys.clone(), bits))
            .transpose()?;
        let parts = NodeParts {
            stat_log,
            orders: api,
            join_work,
            tokens: settings.token_keys.map(TokenVerifier::new),
            admissions: Some(AdmissionKeys::new(order_keys.clone())),
            order_keys: Some(OrderKeys::new(order_keys)),
            operator: settings.operator_keys.map(OperatorKey::new),
        };
        let node = Node::start(config, central.clone(), parts).await?;
        let pipeline = match (ledger, settings.orders.and_then(|o| o.pipeline)) {
            (Some(ledger), Some(pipeline)) => Some(Pipeline::start(central, ledger, pipeline)?),
            _ => None,
        };
        let options = settings.server;
        let server = serve_node(
            listener,
            Arc::clone(&node),
            Surface::Public,
            options.clone(),
        );
        let admin = serve_node(admin_listener, Arc::clone(&node), Surface::Admin, options);
        Ok(Self {
            node,
            server,
            admin,
            pipeline,
        })
    }
}

impl<C: CentralStock> NodeApp<C> {
    /// Where buyers reach the node.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Where operators read the node's metrics, stats and sale.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.addr()
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node<C>> {
        &self.node
    }

    /// Stops accepting, drains open connections, flushes the stat log and
    /// stops the pipeline; returns the node for a last look at its counters.
    pub async fn stop(self) -> Arc<Node<C>> {
        self.server.shutdown().await;
        self.admin.shutdown().await;
        self.node.close();
        if let Some(pipeline) = self.pipeline {
            pipeline.stop().await;
        }
        self.node
    }
}

/// A key from the operating system's random source (the order keys of a
/// node given none, or of the demo's nodes, which share one).
pub fn random_keys() -> Result<KeyRing, AppError> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 48];
    // The operating system's generator (getrandom(2)): no /dev needed, as
    // in a container image's bare root filesystem.
    (rand::rngs::OsRng.try_fill_bytes(&mut bytes))
        .map_err(|error| AppError::Random(std::io::Error::other(error.to_string())))?;
    let key = SecretKey::new(bytes.to_vec())
        .map_err(|_| AppError::Random(std::io::Error::other("random key too short")))?;
    Ok(KeyRing::new(key, Vec::new()))
}

/// Opens the order ledger, naming it (without its password) if it fails.
pub async fn open_ledger(url: &SecretUrl) -> Result<OrderLedger, AppError> {
    OrderLedger::connect(url.clone())
        .await
        .map_err(|source| AppError::Ledger {
            url: url.clone(),
            source,
        })
}
