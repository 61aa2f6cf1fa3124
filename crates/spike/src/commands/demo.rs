//! `spike demo`: the articles' scenario in one process. Nodes with weights
//! 1:2:…:N on one central stock (embedded, or Redis with `--redis`), the
//! embedded front door before them, and simulated users buying through it
//! (with `--queue`, through the sale's waiting room first); then the report,
//! the split over nodes, the orders written to the ledger (SQLite in memory
//! unless `--database-url`), the audit, and every invariant.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use spike_bench::crowd::{run_crowd, CrowdConfig, CrowdReport};
use spike_bench::report::thousands;
use spike_bench::{BenchConfig, Report, Target};
use spike_core::{
    CentralStock, EventId, MemoryCentral, NodeId, OrderStream, QueueConfig, SaleConfig,
};
use spike_dashboard::{serve_dashboard, DashboardConfig};
use spike_front::{serve_front, FrontConfig, Upstream};
use spike_node::NodeConfig;
use spike_orders::{audit_event, Pipeline, PipelineConfig};
use tokio::net::TcpListener;

use super::audit::report_table;
use super::bench::{central_view, print_report};
use super::orders::ledger;
use super::redis;
use crate::app::{random_keys, NodeApp, NodeSettings};
use crate::cli::DemoArgs;

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
    all_invariants_held: bool,
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

/// Runs the demo; `Ok(false)` when an invariant failed.
pub async fn run_demo(args: DemoArgs) -> anyhow::Result<bool> {
    let mut sale = SaleConfig::new(args.stock)?;
    if args.queue {
        sale = sale
            .opening_at(Some(SystemTime::now() + args.opens_in))
            .with_queue(Some(QueueConfig::new(args.admit_rate)?))?;
    }
    match &args.redis {
        None => {
            let central = MemoryCentral::new();
            let event = EventId::parse("G1")?;
            central.create_sale(&event, &sale, false).await?;
            let nodes = (0..args.nodes.get()).map(|_| central.clone()).collect();
            demo(&args, "embedded", &event, &central, nodes).await
        }
        Some(url) => {
            let millis = spike_core::sale::unix_millis(std::time::SystemTime::now());
            let event = EventId::parse(format!("demo-{millis}"))?;
            let central = redis(url).await?;
            central.create_sale(&event, &sale, false).await?;
            let mut nodes = Vec::new();
            for _ in 0..args.nodes.get() {
                // One connection per node, as separate processes would have.
                nodes.push(redis(url).await?);
            }
            demo(&args, "redis", &event, &central, nodes).await
        }
    }
}

async fn demo<C: CentralStock + OrderStream + Clone + std::fmt::Debug>(
    args: &DemoArgs,
    central_kind: &'static str,
    event: &EventId,
    central: &C,
    node_centrals: Vec<C>,
) -> anyhow::Result<bool> {
    let ledger = ledger(&args.database_url).await?;
    let consumer = NodeId::parse(format!("orders-{}", std::process::id()))?;
    let config = PipelineConfig::new(consumer, vec![event.clone()]);
    let pipeline = Pipeline::start(central.clone(), ledger.clone(), config)?;
    let mut apps = Vec::new();
    let mut upstreams = Vec::new();
    // Every node of the sale makes order keys with the same secret.
    let order_keys = random_keys()?;
    for (i, node_central) in node_centrals.into_iter().enumerate() {
        let name = NodeId::parse(format!("n{}", i + 1))?;
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut settings = NodeSettings::new(listen, NodeConfig::new(name, vec![event.clone()]));
        settings.server.grace = Duration::from_secs(1);
        settings.order_keys = Some(order_keys.clone());
        let app = NodeApp::build(settings, node_central).await?;
        let weight = NonZeroU32::new(u32::try_from(i + 1)?).unwrap_or(NonZeroU32::MIN);
        upstreams.push(Upstream {
            address: app.addr().to_string(),
            weight,
        });
        apps.push(app);
    }
    let dashboard = if args.dashboard {
        let listener = TcpListener::bind(args.dashboard_listen).await?;
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
    let front_listener = TcpListener::bind("127.0.0.1:0").await?;
    let front_addr = front_listener.local_addr()?;
    let front = serve_front(front_listener, FrontConfig::new(upstreams))?;
    let weights: Vec<String> = (1..=apps.len()).map(|w| w.to_string()).collect();
    if !args.output.json {
        println!(
            "Spike demo: {} users buying {} tickets through the front door at {front_addr},\n\
             {} nodes with weights {}, {central_kind} central stock (event {event})\n",
            thousands(args.users),
            thousands(args.stock),
            apps.len(),
            weights.join(":"),
        );
    }

    let target: Target = format!("http://{front_addr}/buy/ticket").parse()?;
    let mut config = BenchConfig::new(target, args.users, args.connections);
    config.progress = !args.output.no_progress;
    config.rate = args.rate;
    let (data, crowd) = match central.snapshot(event).await?.map(|s| s.config) {
        Some(sale) if sale.queue().is_some() => {
            let crowd = CrowdConfig {
                address: front_addr.to_string(),
                event: event.to_string(),
                users: args.users,
                connections: args.connections,
                admit_window: sale
                    .queue()
                    .map(QueueConfig::admit_window)
                    .unwrap_or_default(),
                opens_at_ms: sale.opens_at_millis(),
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
    pipeline.stop().await;
    let audit = audit_event(central, &ledger, event, None).await?;
    let counts = ledger.counts(event).await?;
    let orders = OrdersSummary {
        ledger: match ledger.backend() {
            spike_orders::Backend::Postgres => "postgres",
            spike_orders::Backend::Sqlite => "sqlite",
        },
        written: counts.reserved + counts.paid + counts.expired + counts.cancelled,
        drained_after_ms: drained_after.as_millis(),
        audit_passed: audit.passed(),
    };
    let view = central_view(central, event).await?;
    let sells_out = args.users >= args.stock;
    let report = (data.as_ref()).map(|data| Report::new(&config, data, Some(view), sells_out));

    let sales_per_node: BTreeMap<String, u64> = apps
        .iter()
        .map(|app| {
            let node = app.node();
            let sold = node
                .event(event)
                .map_or(0, |state| state.stock.local_sales());
            (node.id().to_string(), sold)
        })
        .collect();
    let load_held = match (&report, &crowd) {
        (Some(report), _) => report.all_checks_passed(),
        (None, Some(crowd)) => {
            crowd.everyone_answered(args.users)
                && crowd.bought == view.sold
                && (!sells_out || view.sold == view.total)
        }
        (None, None) => false,
    };
    let all_invariants_held = load_held
        && sales_per_node.values().sum::<u64>() == view.sold
        && orders.written == view.sold
        && orders.audit_passed;
    if args.output.json {
        let demo = DemoReport {
            central: central_kind,
            event: event.to_string(),
            report,
            waiting_room: crowd,
            sales_per_node,
            orders,
            all_invariants_held,
        };
        println!("{}", serde_json::to_string_pretty(&demo)?);
    } else {
        if let Some(report) = &report {
            print_report(report, &args.output)?;
        }
        if let Some(crowd) = &crowd {
            print_crowd(crowd);
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
        println!(
            "\n{verdict}: {} of {} tickets sold.",
            thousands(view.sold),
            thousands(view.total)
        );
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

/// The waiting room's report, as printed.
fn print_crowd(crowd: &CrowdReport) {
    println!(
        "joined           {} before the opening (shuffled), {} after (in arrival order), in {:.2} s",
        thousands(crowd.joined_early),
        thousands(crowd.joined_late),
        crowd.join_seconds
    );
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
