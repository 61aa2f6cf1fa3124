//! The routing table ([`ROUTES`]): every path a node serves, one row each,
//! with the methods it takes, the surfaces that serve it, its metrics name,
//! its rate limits, and the request it becomes. Adding a route is a row
//! (plus its variant); the node's dispatch then says who handles it, and a
//! test holds `openapi.json` to the table.

use std::sync::LazyLock;

use crate::answer::Answer;
use hyper::{Method, StatusCode};
use spike_core::{IdError, OrderId, UserId};

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
    /// The paths this surface serves, for 404 answers (from [`ROUTES`]).
    pub fn paths(self) -> &'static str {
        static PUBLIC: LazyLock<String> = LazyLock::new(|| paths_served_on(Surface::Public));
        static ADMIN: LazyLock<String> = LazyLock::new(|| paths_served_on(Surface::Admin));
        match self {
            Surface::Public => &PUBLIC,
            Surface::Admin => &ADMIN,
        }
    }
}

fn paths_served_on(surface: Surface) -> String {
    let mut paths: Vec<&str> = (ROUTES.iter())
        .filter(|spec| spec.served.on(surface))
        .map(|spec| spec.path)
        .collect();
    paths.dedup();
    paths.join(", ")
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
    /// `POST /orders/{id}/refund`: a paid order given back.
    Refund(OrderId),
    /// `POST /orders/{id}/change`: a paid ticket exchanged for another
    /// (what for, from the query: see [`ChangeWanted`]).
    Change(OrderId, ChangeWanted),
    /// `GET /users/{id}/orders`: a buyer's written orders.
    OfUser(UserId),
}

/// What a change asks for, as given (`date`, `from`, `to`, `class`,
/// `seat`; each absent one keeps the old ticket's), checked against the
/// runs by the orders API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeWanted {
    /// `date`: another run of the same train.
    pub date: Option<String>,
    /// `from`: the boarding station.
    pub from: Option<String>,
    /// `to`: the station left at.
    pub to: Option<String>,
    /// `class`: the seat class.
    pub class: Option<String>,
    /// `seat`: a seat preference.
    pub seat: Option<String>,
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
    /// `GET /queue/challenge`: the proof of work a join needs (`--join-work`).
    Challenge,
}

/// An operator's control or read of a running sale (admin surface,
/// operator key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRequest {
    /// `POST /control/pause`: stop selling.
    Pause,
    /// `POST /control/resume`: sell again.
    Resume,
    /// `POST /control/admission`: a waiting room's new rate and cap.
    Admission,
    /// `POST /control/revoke`: a buyer's admission taken back.
    Revoke,
    /// `POST /control/reinstate`: a revoked admission given back.
    Reinstate,
    /// `GET /control/log`: the sale's operator log.
    Log,
    /// `GET /control/queue`: the waiting room's figures.
    Queue,
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
    /// `GET /stats/grid`: what changed in a train run's seat grid since a
    /// version the caller holds.
    StatsGrid,
    /// `GET /metrics`: Prometheus metrics.
    Metrics,
    /// `GET /openapi.json`: the API's OpenAPI 3.1 document.
    OpenApi,
    /// The orders API.
    Orders(OrdersRequest),
    /// A sale's waiting room.
    Queue(QueueRequest),
    /// `POST /waitlist` places a waitlist order, `DELETE /waitlist`
    /// withdraws it.
    Waitlist,
    /// `GET /waitlist/status`: where the traveller's waitlist order stands.
    WaitlistStatus,
    /// An operator's control (admin surface, operator key).
    Control(ControlRequest),
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
    /// `POST` (make) or `DELETE` (take back).
    PostOrDelete,
}

impl Methods {
    /// Whether `method` is one of them.
    pub fn allow(self, method: &Method) -> bool {
        match self {
            Self::Get => method == Method::GET,
            Self::Post => method == Method::POST,
            Self::GetOrPost => method == Method::GET || method == Method::POST,
            Self::PostOrDelete => method == Method::POST || method == Method::DELETE,
        }
    }

    /// As the `Allow` header lists them.
    pub fn header(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::GetOrPost => "GET, POST",
            Self::PostOrDelete => "POST, DELETE",
        }
    }
}

/// Which surfaces serve a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The public surface only.
    Public,
    /// The admin surface only.
    Admin,
    /// Both.
    Both,
}

impl Served {
    /// Whether `surface` is among them.
    pub fn on(self, surface: Surface) -> bool {
        match self {
            Served::Both => true,
            Served::Public => surface == Surface::Public,
            Served::Admin => surface == Surface::Admin,
        }
    }
}

/// Which rate limits a route is held to on the public surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// None (the payment service's `pay`, pages, documents, health).
    None,
    /// The per-buyer and per-address limits.
    Buyer,
    /// Those, and the costly-request limit per address: it costs central
    /// stock or the ledger a call (or a large answer) whatever the stock.
    /// A purchase is held to it once its sale sold out and it carries a
    /// request id (see the node's purchase room).
    Costly,
}

/// One row of the routing table.
pub struct RouteSpec {
    /// The path, with `{name}` for each segment the route reads, exactly
    /// as the OpenAPI document writes it.
    pub path: &'static str,
    /// The methods it takes.
    pub methods: Methods,
    /// The surfaces that serve it.
    pub served: Served,
    /// Its name in metrics (the `route` label).
    pub name: &'static str,
    /// The rate limits it is held to.
    pub limits: Limits,
    /// Makes the route from the path's `{…}` segments, in order (a
    /// malformed one is a 400).
    make: fn(&[&str]) -> Result<Route, Answer>,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("path", &self.path)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl RouteSpec {
    /// Whether the rate limits apply to it.
    pub fn rate_limited(&self) -> bool {
        self.limits != Limits::None
    }

    /// Whether the costly-request limit applies to it.
    pub fn costly(&self) -> bool {
        self.limits == Limits::Costly
    }

    /// The `{…}` segments of `segments` if it is this route's path.
    fn capture<'p>(&self, segments: &[&'p str]) -> Option<([&'p str; 2], usize)> {
        let mut captured = [""; 2];
        let mut count = 0;
        let mut pattern = self.path.trim_start_matches('/').split('/');
        for segment in segments {
            let expected = pattern.next()?;
            if expected.starts_with('{') {
                *captured.get_mut(count)? = segment;
                count += 1;
            } else if expected != *segment {
                return None;
            }
        }
        pattern.next().is_none().then_some((captured, count))
    }
}

/// The routing table: every route a node serves, one row each. Adding a
/// route is a row here, its variant of [`Route`], and its handler in the
/// node's dispatch; a test holds `openapi.json` to this table.
pub const ROUTES: [RouteSpec; 28] = {
    use Limits::{Buyer, Costly, None as Free};
    use Methods::{Get, GetOrPost, Post, PostOrDelete};
    use Served::{Admin, Both, Public};
    const fn row(
        path: &'static str,
        methods: Methods,
        served: Served,
        name: &'static str,
        limits: Limits,
        make: fn(&[&str]) -> Result<Route, Answer>,
    ) -> RouteSpec {
        RouteSpec {
            path,
            methods,
            served,
            name,
            limits,
            make,
        }
    }
    #[rustfmt::skip]
    let table = [
        row("/buy/ticket", GetOrPost, Public, "buy", Buyer, |_| Ok(Route::BuyTicket)),
        row("/buy/result", Get, Public, "result", Costly, |_| Ok(Route::BuyResult)),
        row("/queue/join", Post, Public, "queue_join", Costly, |_| Ok(Route::Queue(QueueRequest::Join))),
        row("/queue/status", Get, Public, "queue_status", Buyer, |_| Ok(Route::Queue(QueueRequest::Status))),
        row("/queue", Get, Public, "queue_page", Free, |_| Ok(Route::Queue(QueueRequest::Page))),
        row("/queue/challenge", Get, Public, "queue_challenge", Buyer, |_| Ok(Route::Queue(QueueRequest::Challenge))),
        row("/orders/{id}", Get, Public, "orders", Costly, |p| Ok(Route::Orders(OrdersRequest::Show(order(p)?)))),
        row("/orders/{id}/pay", Post, Public, "orders", Free, |p| Ok(Route::Orders(OrdersRequest::Pay(order(p)?)))),
        row("/orders/{id}/cancel", Post, Public, "orders", Costly, |p| Ok(Route::Orders(OrdersRequest::Cancel(order(p)?)))),
        row("/orders/{id}/refund", Post, Public, "orders", Costly, |p| Ok(Route::Orders(OrdersRequest::Refund(order(p)?)))),
        row("/orders/{id}/change", Post, Public, "orders", Costly, |p| Ok(Route::Orders(OrdersRequest::Change(order(p)?, ChangeWanted::default())))),
        row("/users/{id}/orders", Get, Public, "orders", Costly, |p| Ok(Route::Orders(OrdersRequest::OfUser(user(p)?)))),
        row("/trains/{train}/{date}/availability", Get, Public, "availability", Costly, availability),
        row("/waitlist", PostOrDelete, Public, "waitlist", Costly, |_| Ok(Route::Waitlist)),
        row("/waitlist/status", Get, Public, "waitlist_status", Buyer, |_| Ok(Route::WaitlistStatus)),
        row("/healthz", Get, Both, "healthz", Free, |_| Ok(Route::Healthz)),
        row("/openapi.json", Get, Both, "openapi", Free, |_| Ok(Route::OpenApi)),
        row("/sale", Get, Admin, "sale", Free, |_| Ok(Route::Sale)),
        row("/stats", Get, Admin, "stats", Free, |_| Ok(Route::Stats)),
        row("/stats/grid", Get, Admin, "stats_grid", Free, |_| Ok(Route::StatsGrid)),
        row("/metrics", Get, Admin, "metrics", Free, |_| Ok(Route::Metrics)),
        row("/control/pause", Post, Admin, "control", Free, |_| Ok(Route::Control(ControlRequest::Pause))),
        row("/control/resume", Post, Admin, "control", Free, |_| Ok(Route::Control(ControlRequest::Resume))),
        row("/control/admission", Post, Admin, "control", Free, |_| Ok(Route::Control(ControlRequest::Admission))),
        row("/control/revoke", Post, Admin, "control", Free, |_| Ok(Route::Control(ControlRequest::Revoke))),
        row("/control/reinstate", Post, Admin, "control", Free, |_| Ok(Route::Control(ControlRequest::Reinstate))),
        row("/control/log", Get, Admin, "control", Free, |_| Ok(Route::Control(ControlRequest::Log))),
        row("/control/queue", Get, Admin, "control", Free, |_| Ok(Route::Control(ControlRequest::Queue))),
    ];
    table
};

/// The metrics name of the route at `path` (a path of [`ROUTES`]).
pub fn route_name(path: &str) -> &'static str {
    (ROUTES.iter())
        .find(|spec| spec.path == path)
        .map_or("other", |spec| spec.name)
}

/// The most segments a route's path has.
const MOST_SEGMENTS: usize = 4;

impl Route {
    /// The route `path` names on `surface` and its row of the table. A
    /// path unknown there is a 404; a malformed id in a known path is a 400.
    pub fn parse(path: &str, surface: Surface) -> Result<(Route, &'static RouteSpec), Answer> {
        let not_here = || Answer::no_such_path(path, surface.paths());
        // The segments, without allocating: this runs for every request.
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        let mut segments = [""; MOST_SEGMENTS];
        let mut count = 0;
        for part in parts.by_ref().take(MOST_SEGMENTS) {
            segments[count] = part;
            count += 1;
        }
        if parts.next().is_some() {
            return Err(not_here());
        }
        for spec in &ROUTES {
            let Some((captured, taken)) = spec.capture(&segments[..count]) else {
                continue;
            };
            if !spec.served.on(surface) {
                return Err(not_here());
            }
            return (spec.make)(&captured[..taken]).map(|route| (route, spec));
        }
        Err(not_here())
    }
}

/// The route of `/trains/{train}/{date}/availability`.
fn availability(segments: &[&str]) -> Result<Route, Answer> {
    let [train, date] = segments else {
        return Err(bad_id("a train and a date"));
    };
    Ok(Route::Availability {
        train: decode(train, "train").map_err(bad_id)?,
        date: decode(date, "date").map_err(bad_id)?,
    })
}

fn bad_id(error: impl std::fmt::Display) -> Answer {
    Answer::refused(StatusCode::BAD_REQUEST, error.to_string())
}

fn order(segments: &[&str]) -> Result<OrderId, Answer> {
    let raw = segments.first().copied().unwrap_or_default();
    let text = decode(raw, "order_id").map_err(bad_id)?;
    OrderId::parse(text).map_err(|e: IdError| bad_id(e))
}

fn user(segments: &[&str]) -> Result<UserId, Answer> {
    let raw = segments.first().copied().unwrap_or_default();
    let text = decode(raw, "user_id").map_err(bad_id)?;
    UserId::parse(text).map_err(|e: IdError| bad_id(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(path: &str) -> StatusCode {
        Route::parse(path, Surface::Public).unwrap_err().status()
    }

    fn parsed(path: &str) -> Result<(Route, Methods), StatusCode> {
        Route::parse(path, Surface::Public)
            .map(|(route, spec)| (route, spec.methods))
            .map_err(|refusal| refusal.status())
    }

    #[test]
    fn paths_map_to_routes_and_their_methods() {
        let id = OrderId::parse("G1-3").unwrap();
        assert_eq!(
            parsed("/buy/ticket"),
            Ok((Route::BuyTicket, Methods::GetOrPost))
        );
        assert_eq!(
            parsed("/orders/G1-3"),
            Ok((Route::Orders(OrdersRequest::Show(id.clone())), Methods::Get))
        );
        assert_eq!(
            parsed("/orders/G1-3/pay"),
            Ok((Route::Orders(OrdersRequest::Pay(id.clone())), Methods::Post))
        );
        assert_eq!(
            parsed("/orders/G1-3/cancel"),
            Ok((Route::Orders(OrdersRequest::Cancel(id)), Methods::Post))
        );
        assert_eq!(
            parsed("/users/%E5%BC%A0/orders"),
            Ok((
                Route::Orders(OrdersRequest::OfUser(UserId::parse("张").unwrap())),
                Methods::Get
            ))
        );
        assert_eq!(
            parsed("/trains/G1/2026-12-01/availability"),
            Ok((
                Route::Availability {
                    train: "G1".into(),
                    date: "2026-12-01".into()
                },
                Methods::Get
            ))
        );
        assert_eq!(
            parsed("/queue"),
            Ok((Route::Queue(QueueRequest::Page), Methods::Get))
        );
    }

    /// Every row of the table is served where it says, under its own path.
    #[test]
    fn every_row_is_reached_by_its_own_path() {
        for spec in &ROUTES {
            let concrete = (spec.path.replace("{id}", "G1-1"))
                .replace("{train}", "G1")
                .replace("{date}", "2026-12-01");
            for surface in [Surface::Public, Surface::Admin] {
                let found = Route::parse(&concrete, surface).map(|(_, found)| found.path);
                match spec.served.on(surface) {
                    true => assert_eq!(found, Ok(spec.path), "{surface:?}"),
                    false => assert!(found.is_err(), "{} not on {surface:?}", spec.path),
                }
            }
        }
        assert!(Surface::Public
            .paths()
            .contains("/trains/{train}/{date}/availability"));
        assert!(!Surface::Public.paths().contains("/metrics"));
        assert_eq!(route_name("/queue/status"), "queue_status");
    }

    /// The OpenAPI document and the routing table say the same: the same
    /// paths and methods, the same surfaces (its tags), the same rate
    /// limits (a documented 429), and every answer code.
    #[test]
    fn the_openapi_document_and_the_routing_table_agree() {
        let document: serde_json::Value =
            serde_json::from_str(crate::node::OPENAPI).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                documented.insert((path.clone(), method.to_uppercase()));
                let Some(spec) = ROUTES.iter().find(|spec| spec.path == path) else {
                    continue;
                };
                let tags: Vec<&str> = (operation["tags"].as_array().expect("tags").iter())
                    .filter_map(serde_json::Value::as_str)
                    .collect();
                let served = match (tags.contains(&"public"), tags.contains(&"admin")) {
                    (true, true) => Some(Served::Both),
                    (true, false) => Some(Served::Public),
                    (false, true) => Some(Served::Admin),
                    (false, false) => None,
                };
                assert_eq!(served, Some(spec.served), "tags of {method} {path}");
                let limited = operation["responses"].get("429").is_some();
                assert_eq!(limited, spec.rate_limited(), "429 of {method} {path}");
            }
        }
        let routed: std::collections::BTreeSet<(String, String)> = (ROUTES.iter())
            .flat_map(|spec| {
                let methods = match spec.methods {
                    Methods::GetOrPost => vec!["GET", "POST"],
                    Methods::PostOrDelete => vec!["POST", "DELETE"],
                    other => vec![other.header()],
                };
                methods
                    .into_iter()
                    .map(|m| (spec.path.to_owned(), m.to_owned()))
            })
            .collect();
        assert_eq!(
            documented, routed,
            "openapi.json's operations are the routing table's"
        );

        let codes = &document["components"]["schemas"]["Answer"]["properties"]["code"]["enum"];
        let mut documented: Vec<i64> = (codes.as_array().expect("code enum").iter())
            .filter_map(serde_json::Value::as_i64)
            .collect();
        documented.sort_unstable();
        let mut expected: Vec<i64> = (spike_core::Code::ALL.iter())
            .map(|code| i64::from(code.number()))
            .collect();
        expected.sort_unstable();
        assert_eq!(documented, expected, "every answer code, and only those");
    }

    #[test]
    fn unknown_paths_are_404_and_bad_ids_400() {
        assert_eq!(status("/buy/tickets"), StatusCode::NOT_FOUND);
        assert_eq!(status("/orders/G1-3/return"), StatusCode::NOT_FOUND);
        assert_eq!(status("/orders/bad%20id"), StatusCode::BAD_REQUEST);
        assert_eq!(status("/buy/ticket/x"), StatusCode::NOT_FOUND);
        assert_eq!(status("/users/ann/orders/1"), StatusCode::NOT_FOUND);
        assert!(Methods::GetOrPost.allow(&Method::POST));
        let admin = |path| Route::parse(path, Surface::Admin).map(|(route, _)| route);
        assert_eq!(status("/buy/ticket/"), StatusCode::NOT_FOUND);
        assert_eq!(
            status("/trains/G1/2026-12-01/availability/x"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(admin("/metrics"), Ok(Route::Metrics));
        assert_eq!(admin("/healthz"), Ok(Route::Healthz));
        assert_eq!(
            status("/metrics"),
            StatusCode::NOT_FOUND,
            "not on the public surface"
        );
        assert_eq!(status("/stats"), StatusCode::NOT_FOUND);
        assert_eq!(status("/sale"), StatusCode::NOT_FOUND);
        assert_eq!(status("/control/pause"), StatusCode::NOT_FOUND);
        assert_eq!(
            admin("/control/pause"),
            Ok(Route::Control(ControlRequest::Pause))
        );
        assert!(
            admin("/buy/ticket").is_err(),
            "no purchases on the admin surface"
        );
        assert!(!Methods::Get.allow(&Method::POST));
        assert!(!Methods::Post.allow(&Method::GET));
    }
}
