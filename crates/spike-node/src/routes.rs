//! The routing table: every path a node serves, the methods it takes and
//! the request it becomes. Adding a route is one line in [`Route::parse`]
//! (plus its variant); the node's dispatch then says who handles it.

use hyper::{Method, StatusCode};
use spike_core::{IdError, OrderId, UserId};
use spike_http::Answer;

use crate::query::decode;

/// Which listener serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// What buyers (and the payment service) need: purchases, orders,
    /// `/healthz`. Behind the front door.
    Public,
    /// What an operator reads: metrics, stats, the sale's central view,
    /// `/healthz`. On `--admin-listen` (loopback by default), never behind
    /// the front door.
    Admin,
}

impl Surface {
    /// The paths this surface serves, for 404 answers.
    pub fn paths(self) -> &'static str {
        match self {
            Surface::Public => {
                "/buy/ticket, /buy/result, /healthz, /openapi.json, /orders/{id}, \
                 /orders/{id}/pay, /orders/{id}/cancel, /users/{id}/orders, /queue, \
                 /queue/join, /queue/status, /trains/{train}/{date}/availability"
            }
            Surface::Admin => "/metrics, /stats, /sale, /healthz, /openapi.json",
        }
    }
}

/// A request to the orders API, as the routing table parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrdersRequest {
    /// `GET /orders/{id}`: one order, written or still in the stream.
    Show(OrderId),
    /// `POST /orders/{id}/pay`.
    Pay(OrderId),
    /// `POST /orders/{id}/cancel`.
    Cancel(OrderId),
    /// `GET /users/{id}/orders`: a buyer's written orders.
    OfUser(UserId),
}

/// A request to a sale's waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRequest {
    /// `POST /queue/join`: join (or find one's place).
    Join,
    /// `GET /queue/status`: where the buyer stands.
    Status,
    /// `GET /queue`: the waiting-room page.
    Page,
}

/// One route of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET|POST /buy/ticket`: buy one seat.
    BuyTicket,
    /// `GET /buy/result`: what a request id bought.
    BuyResult,
    /// `GET /sale`: central stock's view of a sale.
    Sale,
    /// `GET /healthz`: liveness and local state.
    Healthz,
    /// `GET /stats`: cumulative counters for the dashboard.
    Stats,
    /// `GET /metrics`: Prometheus metrics.
    Metrics,
    /// `GET /openapi.json`: the API's OpenAPI 3.1 document.
    OpenApi,
    /// The orders API.
    Orders(OrdersRequest),
    /// A sale's waiting room.
    Queue(QueueRequest),
    /// `GET /trains/{train}/{date}/availability`: free seats per station
    /// pair, from the node's memory.
    Availability {
        /// The train number, as given.
        train: String,
        /// The date, as given.
        date: String,
    },
}

/// The methods a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    /// `GET` only.
    Get,
    /// `POST` only (it changes something).
    Post,
    /// `GET` or `POST` (purchases, for tools that can only GET).
    GetOrPost,
}

impl Methods {
    /// Whether `method` is one of them.
    pub fn allow(self, method: &Method) -> bool {
        match self {
            Self::Get => method == Method::GET,
            Self::Post => method == Method::POST,
            Self::GetOrPost => method == Method::GET || method == Method::POST,
        }
    }

    /// As the `Allow` header lists them.
    pub fn header(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::GetOrPost => "GET, POST",
        }
    }
}

impl Route {
    /// The route `path` names on `surface` and the methods it takes: the
    /// routing table. A path unknown there is a 404; a malformed id in a
    /// known path is a 400.
    pub fn parse(path: &str, surface: Surface) -> Result<(Route, Methods), Answer> {
        let not_here = || Answer::no_such_path(path, surface.paths());
        match Route::parse_any(path) {
            Ok((route, methods)) if route.served_on(surface) => Ok((route, methods)),
            Ok(_) => Err(not_here()),
            Err(refusal) if refusal.status() == StatusCode::NOT_FOUND => Err(not_here()),
            Err(refusal) => Err(refusal),
        }
    }

    /// Whether `surface` serves this route.
    pub fn served_on(&self, surface: Surface) -> bool {
        match self {
            Route::Healthz | Route::OpenApi => true,
            Route::Sale | Route::Stats | Route::Metrics => surface == Surface::Admin,
            Route::BuyTicket
            | Route::BuyResult
            | Route::Orders(_)
            | Route::Queue(_)
            | Route::Availability { .. } => surface == Surface::Public,
        }
    }

    /// Whether it costs central stock or the ledger a call (or a large
    /// answer) whatever the stock: held to the costly-request limit per
    /// client address (a purchase is, once its sale sold out and it carries
    /// a request id; see `Node::admit`).
    pub fn costly(&self) -> bool {
        match self {
            Route::BuyResult | Route::Availability { .. } => true,
            Route::Queue(request) => *request == QueueRequest::Join,
            Route::Orders(request) => !matches!(request, OrdersRequest::Pay(_)),
            _ => false,
        }
    }

    /// Whether the rate limits apply: the routes buyers call (not the
    /// payment service's `pay`, the page, the documents or health).
    pub fn rate_limited(&self) -> bool {
        match self {
            Route::BuyTicket | Route::BuyResult | Route::Availability { .. } => true,
            Route::Queue(request) => *request != QueueRequest::Page,
            Route::Orders(request) => !matches!(request, OrdersRequest::Pay(_)),
            Route::Sale | Route::Healthz | Route::Stats | Route::Metrics | Route::OpenApi => false,
        }
    }

    /// The routing table itself, whatever the surface.
    fn parse_any(path: &str) -> Result<(Route, Methods), Answer> {
        use Methods::{Get, GetOrPost, Post};
        // Up to five segments, without allocating: this runs for every request.
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        let segments = [parts.next(), parts.next(), parts.next(), parts.next()];
        let fifth = parts.next();
        let found = match segments {
            [Some("trains"), Some(train), Some(date), Some("availability")] if fifth.is_none() => {
                let train = decode(train, "train").map_err(bad_id)?;
                let date = decode(date, "date").map_err(bad_id)?;
                (Route::Availability { train, date }, Get)
            }
            _ if fifth.is_some() => {
                return Err(Answer::no_such_path(path, Surface::Public.paths()))
            }
            [Some("buy"), Some("ticket"), None, _] => (Route::BuyTicket, GetOrPost),
            [Some("buy"), Some("result"), None, _] => (Route::BuyResult, Get),
            [Some("sale"), None, ..] => (Route::Sale, Get),
            [Some("healthz"), None, ..] => (Route::Healthz, Get),
            [Some("stats"), None, ..] => (Route::Stats, Get),
            [Some("metrics"), None, ..] => (Route::Metrics, Get),
            [Some("openapi.json"), None, ..] => (Route::OpenApi, Get),
            [Some("queue"), None, ..] => (Route::Queue(QueueRequest::Page), Get),
            [Some("queue"), Some("join"), None, _] => (Route::Queue(QueueRequest::Join), Post),
            [Some("queue"), Some("status"), None, _] => (Route::Queue(QueueRequest::Status), Get),
            [Some("orders"), Some(id), None, _] => {
                (Route::Orders(OrdersRequest::Show(order(id)?)), Get)
            }
            [Some("orders"), Some(id), Some("pay"), None] => {
                (Route::Orders(OrdersRequest::Pay(order(id)?)), Post)
            }
            [Some("orders"), Some(id), Some("cancel"), None] => {
                (Route::Orders(OrdersRequest::Cancel(order(id)?)), Post)
            }
            [Some("users"), Some(id), Some("orders"), None] => {
                (Route::Orders(OrdersRequest::OfUser(user(id)?)), Get)
            }
            _ => return Err(Answer::no_such_path(path, Surface::Public.paths())),
        };
        Ok(found)
    }

    /// The route's name in metrics (`route` label).
    pub fn name(&self) -> &'static str {
        match self {
            Route::BuyTicket => "buy",
            Route::BuyResult => "result",
            Route::Sale => "sale",
            Route::Healthz => "healthz",
            Route::Stats => "stats",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
            Route::Orders(_) => "orders",
            Route::Queue(QueueRequest::Join) => "queue_join",
            Route::Queue(QueueRequest::Status) => "queue_status",
            Route::Queue(QueueRequest::Page) => "queue_page",
            Route::Availability { .. } => "availability",
        }
    }
}

fn bad_id(error: impl std::fmt::Display) -> Answer {
    Answer::refused(StatusCode::BAD_REQUEST, error.to_string())
}

fn order(raw: &str) -> Result<OrderId, Answer> {
    let text = decode(raw, "order_id").map_err(bad_id)?;
    OrderId::parse(text).map_err(|e: IdError| bad_id(e))
}

fn user(raw: &str) -> Result<UserId, Answer> {
    let text = decode(raw, "user_id").map_err(bad_id)?;
    UserId::parse(text).map_err(|e: IdError| bad_id(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(path: &str) -> StatusCode {
        Route::parse(path, Surface::Public).unwrap_err().status()
    }

    #[test]
    fn paths_map_to_routes_and_their_methods() {
        let id = OrderId::parse("G1-3").unwrap();
        assert_eq!(
            Route::parse("/buy/ticket", Surface::Public),
            Ok((Route::BuyTicket, Methods::GetOrPost))
        );
        assert_eq!(
            Route::parse("/orders/G1-3", Surface::Public),
            Ok((Route::Orders(OrdersRequest::Show(id.clone())), Methods::Get))
        );
        assert_eq!(
            Route::parse("/orders/G1-3/pay", Surface::Public),
            Ok((Route::Orders(OrdersRequest::Pay(id.clone())), Methods::Post))
        );
        assert_eq!(
            Route::parse("/orders/G1-3/cancel", Surface::Public),
            Ok((Route::Orders(OrdersRequest::Cancel(id)), Methods::Post))
        );
        assert_eq!(
            Route::parse("/users/%E5%BC%A0/orders", Surface::Public),
            Ok((
                Route::Orders(OrdersRequest::OfUser(UserId::parse("张").unwrap())),
                Methods::Get
            ))
        );
    }

    #[test]
    fn the_openapi_document_describes_every_route() {
        let document: serde_json::Value =
            serde_json::from_str(crate::node::OPENAPI).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        for path in [
            "/buy/ticket",
            "/buy/result",
            "/healthz",
            "/openapi.json",
            "/orders/{id}",
            "/orders/{id}/pay",
            "/orders/{id}/cancel",
            "/users/{id}/orders",
            "/queue",
            "/queue/join",
            "/queue/status",
            "/metrics",
            "/stats",
            "/sale",
            "/trains/{train}/{date}/availability",
        ] {
            assert!(paths.contains_key(path), "{path} is documented");
            let concrete = (path.replace("{id}", "G1-1"))
                .replace("{train}", "G1")
                .replace("{date}", "2026-12-01");
            assert!(
                Route::parse(&concrete, Surface::Public).is_ok()
                    || Route::parse(&concrete, Surface::Admin).is_ok(),
                "{path} is served"
            );
        }
        assert_eq!(paths.len(), 15, "and nothing else");
        let codes = &document["components"]["schemas"]["Answer"]["properties"]["code"]["enum"];
        let every_code: Vec<i64> = (spike_core::Code::ALL.iter())
            .map(|code| i64::from(code.number()))
            .collect();
        let mut documented: Vec<i64> = (codes.as_array().expect("code enum").iter())
            .filter_map(serde_json::Value::as_i64)
            .collect();
        documented.sort_unstable();
        let mut expected = every_code.clone();
        expected.sort_unstable();
        assert_eq!(documented, expected, "every answer code, and only those");
    }

    #[test]
    fn the_openapi_document_says_which_routes_are_rate_limited() {
        let document: serde_json::Value =
            serde_json::from_str(crate::node::OPENAPI).expect("openapi.json is JSON");
        for (path, item) in document["paths"].as_object().expect("paths") {
            let concrete = path.replace("{id}", "G1-1");
            let Ok((route, _)) = Route::parse(&concrete, Surface::Public) else {
                continue;
            };
            for (method, operation) in item.as_object().expect("path item") {
                let documented = operation["responses"].get("429").is_some();
                assert_eq!(documented, route.rate_limited(), "{method} {path}");
            }
        }
    }

    #[test]
    fn unknown_paths_are_404_and_bad_ids_400() {
        assert_eq!(status("/buy/tickets"), StatusCode::NOT_FOUND);
        assert_eq!(status("/orders/G1-3/refund"), StatusCode::NOT_FOUND);
        assert_eq!(status("/orders/bad%20id"), StatusCode::BAD_REQUEST);
        assert_eq!(status("/buy/ticket/x"), StatusCode::NOT_FOUND);
        assert_eq!(status("/users/ann/orders/1"), StatusCode::NOT_FOUND);
        assert!(Methods::GetOrPost.allow(&Method::POST));
        let admin = |path| Route::parse(path, Surface::Admin).map(|(route, _)| route);
        assert_eq!(admin("/metrics"), Ok(Route::Metrics));
        assert_eq!(admin("/healthz"), Ok(Route::Healthz));
        assert_eq!(
            status("/metrics"),
            StatusCode::NOT_FOUND,
            "not on the public surface"
        );
        assert_eq!(status("/stats"), StatusCode::NOT_FOUND);
        assert_eq!(status("/sale"), StatusCode::NOT_FOUND);
        assert!(
            admin("/buy/ticket").is_err(),
            "no purchases on the admin surface"
        );
        assert!(!Methods::Get.allow(&Method::POST));
        assert!(!Methods::Post.allow(&Method::GET));
    }
}
