//! `spike demo`: the articles' scenario in one process. Nodes with weights
//! 1:2:…:N on one central stock (embedded, or Redis with `--redis`), the
//! embedded front door before them, and simulated users buying through it
//! (with `--queue`, through the sale's waiting room first; with `--train`,
//! each for a random leg, class and party of a train run); then the report,
//! the split over nodes, the orders written to the ledger (SQLite in memory
//! unless `--database-url`), the audit, every invariant and, for a train
//! run, the seat-segments sold of its capacity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use spike_bench::crowd::{run_crowd, CrowdConfig, CrowdReport};
use spike_bench::report::thousands;
use spike_bench::stampede::Stampede;
use spike_bench::{BenchConfig, Report, Target, TicketChoices};
use spike_core::sale::BuyerAuth;
use spike_core::{
    BuyerPolicy, CentralStock, EventId, MemoryCentral, NodeId, Occupancy, OrderStream, QueueConfig,
    SaleConfig, TrainLayout, TrainRun,
};
use spike_dashboard::{serve_dashboard, DashboardConfig};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_node::NodeConfig;
use spike_orders::{audit_event, Pipeline, PipelineConfig};

use super::audit::report_table;
use super::bench::{central_view, print_report};
use super::demo_waitlist::{print_waitlist, waitlist_act, WaitlistReport};
use super::orders::ledger;
use super::redis;
use crate::app::{random_keys, NodeApp, NodeSettings};
use crate::args::{parse_duration, parse_rate, OutputArgs, QueueFlag};
use clap::Args;
use spike_core::SecretUrl;

/// `spike demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated users, each buying once.
    #[arg(long, default_value = "1000000")]
    pub users: u64,
    /// Tickets for sale.
    #[arg(long, default_value = "10000")]
    pub stock: u64,
    /// Sell a train run instead (--stock does not apply): 10 stations,
    /// 1,000 seats (first:2x50, second:9x100); each user buys a random
    /// station pair, class and party of 1 to 5. The report counts
    /// seat-segments sold against the run's 9,000.
    #[arg(long, conflicts_with = "queue")]
    pub train: bool,
    /// With --train, the waitlist's act after the sellout: this many
    /// travellers the crowd turned away place waitlist orders, then a tenth
    /// of the orders come back (cancelled, or paid and refunded) and fill
    /// them, oldest first (0: no act).
    #[arg(long, default_value = "500", requires = "train")]
    pub waitlist: u64,
    /// Nodes; node i gets weight i (1:2:3:4 for four).
    #[arg(long, default_value = "4")]
    pub nodes: NonZeroU32,
    /// Keep-alive connections of the simulated users (default 100; 2,000
    /// with --stampede).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Run on real Redis instead of the embedded central stock.
    #[arg(long)]
    pub redis: Option<SecretUrl>,
    /// The order ledger the sold seats are written to (default: SQLite in memory).
    #[arg(long, default_value = "sqlite::memory:")]
    pub database_url: SecretUrl,
    /// Fixed total request rate per second (default: as fast as possible;
    /// 100,000/s with --stampede).
    #[arg(long, conflicts_with = "queue")]
    pub rate: Option<f64>,
    /// The crowd arrives at once: the users come at a fixed rate (--rate,
    /// 100,000/s by default) over 2,000 connections, whatever the nodes
    /// answer (an open loop), and the demo prints each second's offered,
    /// answered, sold and shed requests and p99, and how many times what
    /// the cluster sold the crowd offered.
    #[arg(long, conflicts_with_all = ["queue", "train"])]
    pub stampede: bool,
    /// Put the sale behind a waiting room: the users join, those who joined
    /// before the opening are shuffled, positions are admitted at
    /// --admit-rate, and admitted users buy with their admission token.
    /// `--queue auto`: a spillover room, which lets users straight through
    /// while they arrive under --admit-rate.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "always")]
    pub queue: Option<QueueFlag>,
    /// Waiting room: positions admitted per second.
    #[arg(long, value_parser = parse_rate, default_value = "2000/s", requires = "queue")]
    pub admit_rate: NonZeroU32,
    /// Waiting room: the sale opens this long after the demo starts.
    #[arg(long, value_parser = parse_duration, default_value = "5s", requires = "queue")]
    pub opens_in: Duration,
    /// Serve the live dashboard while the demo runs, and print its address.
    #[arg(long)]
    pub dashboard: bool,
    /// Where the dashboard listens.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub dashboard_listen: SocketAddr,
    /// Keep the nodes and the dashboard up this long after the sale (e.g. 30s).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub linger: Duration,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The demo's result: the load report (or the crowd's, through a waiting
/// room) plus what each node sold.
#[derive(Debug, Serialize)]
struct DemoReport {
    central: &'static str,
    event: String,
    report: Option<Report>,
    waiting_room: Option<CrowdReport>,
    sales_per_node: BTreeMap<String, u64>,
    orders: OrdersSummary,
    /// A train run's seats, when the demo sold one.
    seats: Option<SeatSummary>,
    /// With `--stampede`: the arrivals against what the cluster sold.
    stampede: Option<Stampede>,
    /// With `--train`: the waitlist's act after the sellout.
    waitlist: Option<WaitlistReport>,
    all_invariants_held: bool,
}

/// How full a train run is: seat-segments sold of its capacity, per class.
#[derive(Debug, Serialize)]
struct SeatSummary {
    seat_segments_sold: u64,
    seat_segments_total: u64,
    per_class: Vec<ClassFill>,
}

/// One class's seat-segments sold and capacity.
#[derive(Debug, Serialize)]
struct ClassFill {
    class: String,
    sold: u64,
    total: u64,
}

impl SeatSummary {
    fn of(occupancy: &Occupancy) -> Self {
        let layout = &occupancy.layout;
        let segments = u64::from(layout.segments());
        let per_class = (layout.classes().iter())
            .zip(&occupancy.classes)
            .map(|(class, held)| ClassFill {
                class: class.name().to_owned(),
                sold: held.sold_segments(),
                total: u64::from(class.seats()) * segments,
            })
            .collect();
        Self {
            seat_segments_sold: occupancy.sold_segments(),
            seat_segments_total: layout.capacity(),
            per_class,
        }
    }
}

/// What became of the sold seats in the order ledger.
#[derive(Debug, Serialize)]
struct OrdersSummary {
    ledger: &'static str,
    written: u64,
    /// From the last answer of the sale until the stream was empty.
    drained_after_ms: u128,
    audit_passed: bool,
}

/// Longest wait for the order stream to drain after the sale.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The demo train's route: G1's stations, Beijing to Shanghai.
const DEMO_STATIONS: [&str; 10] = [
    "Beijing", "Langfang", "Tianjin", "Cangzhou", "Dezhou", "Jinan", "Xuzhou", "Bengbu", "Nanjing",
    "Shanghai",
];

/// The demo train's classes: 100 first-class and 900 second-class seats.
const DEMO_CLASSES: [&str; 2] = ["first:2x50", "second:9x100"];

/// What the demo sells: a plain sale of `--stock`, or (`--train`) a train run.
struct DemoSale {
    event: EventId,
    config: SaleConfig,
    train: Option<TrainRun>,
}

impl DemoSale {
    /// `train` names the run (its date is fixed), `plain` the plain sale.
    fn new(args: &DemoArgs, train: &str, plain: &str) -> anyhow::Result<Self> {
        if args.train {
            let run = TrainRun::parse(train, "2026-12-01")?;
            let layout = TrainLayout::new(&DEMO_STATIONS, &DEMO_CLASSES)?;
            return Ok(Self {
                event: run.event(),
                config: SaleConfig::for_train(layout)?,
                train: Some(run),
            });
        }
        let mut config = SaleConfig::new(args.stock)?;
        if let Some(flag) = args.queue {
            // A waiting room is a token sale: the crowd carries tokens.
            config = config
                .with_policy(BuyerPolicy::Identified {
                    per_user_limit: NonZeroU32::MIN,
                    auth: BuyerAuth::Token,
                })
                .opening_at(Some(SystemTime::now() + args.opens_in))
                .with_queue(Some(
                    QueueConfig::new(args.admit_rate)?.with_mode(flag.into()),
                ))?;
        }
        Ok(Self {
            event: EventId::parse(plain)?,
            config,
            train: None,
        })
    }
}

/// The users' rate with `--stampede` and no `--rate`.
const STAMPEDE_RATE: f64 = 100_000.0;

/// The users' connections with `--stampede` and no `--connections`.
const STAMPEDE_CONNECTIONS: usize = 2_000;

/// The users' connections without `--stampede` or `--connections`.
const DEFAULT_CONNECTIONS: usize = 100;

impl DemoArgs {
    /// The users' keep-alive connections.
    fn connections(&self) -> usize {
        let default = match self.stampede {
            true => STAMPEDE_CONNECTIONS,
            false => DEFAULT_CONNECTIONS,
        };
        self.connections.unwrap_or(default)
    }

    /// The users' fixed rate, if any.
    fn rate(&self) -> Option<f64> {
        self.rate.or(self.stampede.then_some(STAMPEDE_RATE))
    }
}

/// Runs the demo; `Ok(false)` when an invariant failed.
pub async fn run_demo(args: DemoArgs) -> anyhow::Result<bool> {
    match &args.redis {
        None => {
            let sale = DemoSale::new(&args, "G1", "G1")?;
            let central = MemoryCentral::new();
            central
                .create_sale(&sale.event, &sale.config, false)
                .await?;
            let nodes = (0..args.nodes.get()).map(|_| central.clone()).collect();
            demo(&args, "embedded", &sale, &central, nodes).await
        }
        Some(url) => {
            let millis = spike_core::time::unix_millis(std::time::SystemTime::now());
            // A fresh run or sale each time, so that runs never collide.
            let train = format!("D{}", millis % 1_000_000_000);
            let sale = DemoSale::new(&args, &train, &format!("demo-{millis}"))?;
            let central = redis(url).await?;
            central
                .create_sale(&sale.event, &sale.config, false)
                .await?;
            let mut nodes = Vec::new();
            for _ in 0..args.nodes.get() {
                // One connection per node, as separate processes would have.
                nodes.push(redis(url).await?);
            }
            demo(&args, "redis", &sale, &central, nodes).await
        }
    }
}

async fn demo<C: CentralStock + OrderStream + Clone + std::fmt::Debug>(
    args: &DemoArgs,
    central_kind: &'static str,
    sale: &DemoSale,
    central: &C,
    node_centrals: Vec<C>,
) -> anyhow::Result<bool> {
    let event = &sale.event;
    let ledger = ledger(&args.database_url).await?;
    let consumer = NodeId::parse(format!("orders-{}", std::process::id()))?;
    let config = PipelineConfig::new(consumer, vec![event.clone()]);
    let pipeline = Pipeline::start(central.clone(), ledger.clone(), config)?;
    let mut apps = Vec::new();
    let mut upstreams = Vec::new();
    // Every node of the sale makes order keys with the same secret, and
    // verifies the crowd's tokens with one key (a queued sale's).
    let order_keys = random_keys()?;
    let token_keys = random_keys()?;
    for (i, node_central) in node_centrals.into_iter().enumerate() {
        let name = NodeId::parse(format!("n{}", i + 1))?;
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut settings = NodeSettings::new(listen, NodeConfig::new(name, vec![event.clone()]));
        settings.server.grace = Duration::from_secs(1);
        settings.order_keys = Some(order_keys.clone());
        settings.token_keys = Some(token_keys.clone());
        let app = NodeApp::build(settings, node_central).await?;
        let weight = NonZeroU32::new(u32::try_from(i + 1)?).unwrap_or(NonZeroU32::MIN);
        upstreams.push(Upstream {
            address: app.addr().to_string(),
            weight,
        });
        apps.push(app);
    }
    let dashboard = if args.dashboard {
        let listener = spike_http::listen(args.dashboard_listen)?;
        let nodes = apps
            .iter()
            .map(|app| app.admin_addr().to_string())
            .collect();
        let dashboard = serve_dashboard(listener, DashboardConfig::new(nodes));
        eprintln!("dashboard: http://{}/dashboard", dashboard.addr());
        Some(dashboard)
    } else {
        None
    };
    let front_listener = spike_http::listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let front_addr = front_listener.local_addr()?;
    let front = serve_front(front_listener, FrontConfig::new(upstreams))?;
    let weights: Vec<String> = (1..=apps.len()).map(|w| w.to_string()).collect();
    let goods = match (&sale.train, sale.config.train()) {
        (Some(run), Some(layout)) => format!(
            "seats of train {} ({} stations, {} seats, {} seat-segments)",
            run.train(),
            layout.stations().len(),
            thousands(layout.seats()),
            thousands(layout.capacity())
        ),
        _ => format!("{} tickets", thousands(args.stock)),
    };
    if !args.output.json {
        println!(
            "Spike demo: {} users buying {goods} through the front door at {front_addr},\n\
             {} nodes with weights {}, {central_kind} central stock (event {event})\n",
            thousands(args.users),
            apps.len(),
            weights.join(":"),
        );
    }

    let path = match &sale.train {
        Some(run) => format!("/buy/ticket?train={}&date={}", run.train(), run.date()),
        None => "/buy/ticket".to_owned(),
    };
    let target: Target = format!("http://{front_addr}{path}").parse()?;
    let mut config = BenchConfig::new(target, args.users, args.connections());
    config.progress = !args.output.no_progress;
    config.rate = args.rate();
    config.tickets = (sale.config.train()).map(|layout| TicketChoices {
        stations: layout.stations().to_vec(),
        classes: layout
            .classes()
            .iter()
            .map(|c| c.name().to_owned())
            .collect(),
        seed: 12306,
    });
    let (data, crowd) = match central.snapshot(event).await?.map(|s| s.config) {
        Some(sale) if sale.queue().is_some() => {
            let crowd = CrowdConfig {
                address: front_addr.to_string(),
                event: event.to_string(),
                users: args.users,
                connections: args.connections(),
                admit_window: sale
                    .queue()
                    .map(QueueConfig::admit_window)
                    .unwrap_or_default(),
                opens_at_ms: sale.opens_at_millis(),
                token_key: token_keys.signing().clone(),
            };
            if !args.output.json {
                println!(
                    "waiting room: the sale opens in {:?}, admitting {}/s\n",
                    args.opens_in, args.admit_rate
                );
            }
            (None, Some(run_crowd(crowd).await?))
        }
        _ => (Some(spike_bench::run(&config).await?), None),
    };
    let sale_ended = Instant::now();
    while central.backlog(event).await?.entries > 0 && sale_ended.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained_after = sale_ended.elapsed();
    // Central stock as the crowd left it: what the load report checks
    // (the waitlist's act gives seats back and fills orders after it).
    let sale_view = central_view(central, event).await?;
    let waitlist = match (&sale.train, sale.config.train()) {
        (Some(run), Some(layout)) if args.waitlist > 0 => {
            let front = front_addr.to_string();
            let act = waitlist_act(central, &ledger, &front, run, layout, args.waitlist).await?;
            let settled = Instant::now();
            while central.backlog(event).await?.entries > 0 && settled.elapsed() < DRAIN_TIMEOUT {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Some(act)
        }
        _ => None,
    };
    pipeline.stop().await;
    let audit = audit_event(central, &ledger, event, None).await?;
    let counts = ledger.counts(event).await?;
    let orders = OrdersSummary {
        ledger: match ledger.backend() {
            spike_orders::Backend::Postgres => "postgres",
            spike_orders::Backend::Sqlite => "sqlite",
        },
        written: counts.reserved
            + counts.paid
            + counts.expired
            + counts.cancelled
            + counts.refunded
            + counts.changing
            + counts.changed,
        drained_after_ms: drained_after.as_millis(),
        audit_passed: audit.passed(),
    };
    let view = central_view(central, event).await?;
    let seats = central
        .occupancy(event)
        .await?
        .as_ref()
        .map(SeatSummary::of);
    // A plain sale must sell out when buyers outnumber its seats; a train
    // run's orders hold any number of seat-segments, so its fill is
    // reported (seat-segments sold of the most that could be), not assumed.
    let sells_out = seats.is_none() && args.users >= args.stock;
    let report = (data.as_ref()).map(|data| Report::new(&config, data, Some(sale_view), sells_out));
    let stampede = match (&report, args.stampede, config.rate) {
        (Some(report), true, Some(rate)) => Some(Stampede::of(report, rate)),
        _ => None,
    };

    let sales_per_node: BTreeMap<String, u64> = apps
        .iter()
        .map(|app| {
            let node = app.node();
            let sold = node.event(event).map_or(0, |state| state.local_sales());
            (node.id().to_string(), sold)
        })
        .collect();
    let load_held = match (&report, &crowd) {
        (Some(report), _) => report.all_checks_passed(),
        (None, Some(crowd)) => {
            crowd.everyone_answered(args.users)
                && crowd.bought == sale_view.sold
                && (!sells_out || sale_view.sold == sale_view.total)
        }
        (None, None) => false,
    };
    // Every order a node sold or the waitlist filled is written; those that
    // hold a seat are what central stock counts sold.
    let filled = waitlist.as_ref().map_or(0, |act| act.filled);
    let holding = counts.reserved + counts.paid + counts.changing;
    let all_invariants_held = load_held
        && sales_per_node.values().sum::<u64>() + filled == orders.written
        && holding == view.sold
        && orders.audit_passed;
    if args.output.json {
        let demo = DemoReport {
            central: central_kind,
            event: event.to_string(),
            report,
            waiting_room: crowd,
            sales_per_node,
            orders,
            seats,
            stampede,
            waitlist,
            all_invariants_held,
        };
        println!("{}", serde_json::to_string_pretty(&demo)?);
    } else {
        if let Some(report) = &report {
            print_report(report, &args.output)?;
            if let Some(stampede) = &stampede {
                print!("{}", stampede.table(report, args.users));
            }
        }
        if let Some(crowd) = &crowd {
            print_crowd(crowd);
        }
        if let Some(act) = &waitlist {
            print_waitlist(act);
        }
        println!("sales per node");
        for (node, sold) in &sales_per_node {
            println!("  {node:<12} {:>12}", thousands(*sold));
        }
        println!(
            "\norders: {} written to the {} ledger; stream empty {} ms after the last answer",
            thousands(orders.written),
            orders.ledger,
            orders.drained_after_ms,
        );
        print!("{}", report_table(event, &audit));
        let verdict = if all_invariants_held {
            "every invariant held"
        } else {
            "AN INVARIANT FAILED"
        };
        match &seats {
            Some(seats) => {
                println!("\nseat-segments sold (a seat over one station-to-station segment)");
                for class in &seats.per_class {
                    println!(
                        "  {:<12} {:>8} of {:>8} ({:.1} %)",
                        class.class,
                        thousands(class.sold),
                        thousands(class.total),
                        percent(class.sold, class.total)
                    );
                }
                println!(
                    "\n{verdict}: {} orders; {} of the {} seat-segments the run has sold ({:.1} %).",
                    thousands(view.sold),
                    thousands(seats.seat_segments_sold),
                    thousands(seats.seat_segments_total),
                    percent(seats.seat_segments_sold, seats.seat_segments_total)
                );
            }
            None => println!(
                "\n{verdict}: {} of {} tickets sold.",
                thousands(view.sold),
                thousands(view.total)
            ),
        }
    }
    if !args.linger.is_zero() {
        eprintln!(
            "keeping the nodes and the dashboard up for {:?}",
            args.linger
        );
        tokio::time::sleep(args.linger).await;
    }
    if let Some(dashboard) = dashboard {
        dashboard.shutdown().await;
    }
    front.shutdown().await;
    for app in apps {
        app.stop().await;
    }
    Ok(all_invariants_held)
}

/// `part` of `whole`, in percent.
fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// The waiting room's report, as printed.
fn print_crowd(crowd: &CrowdReport) {
    println!(
        "joined           {} before the opening (shuffled), {} after (in arrival order), in {:.2} s",
        thousands(crowd.joined_early),
        thousands(crowd.joined_late),
        crowd.join_seconds
    );
    if crowd.passed > 0 {
        println!(
            "spillover        {} of them passed straight through (demand under the rate)",
            thousands(crowd.passed)
        );
    }
    println!(
        "after opening    {:.2} s until every user had a seat or a \"sold out\"",
        crowd.after_opening_seconds
    );
    println!(
        "requests         {} ({} status polls), {} errors",
        thousands(crowd.requests),
        thousands(crowd.polls),
        thousands(crowd.errors)
    );
    println!(
        "outcome          {} bought, {} told sold out, {} let their admission lapse",
        thousands(crowd.bought),
        thousands(crowd.told_sold_out),
        thousands(crowd.expired)
    );
    match crowd.last_buyer {
        Some(last) => println!(
            "last buyer       position {} waited {:.2} s (from the opening, or their join if later, to admission)",
            thousands(last.position),
            last.waited_ms as f64 / 1000.0
        ),
        None => println!("last buyer       nobody bought"),
    }
}
