//! [`OrderLedger`]: the repository of durable orders and sale rules, over
//! sqlx's `Any` driver so that one implementation serves PostgreSQL
//! (`postgres://…`) and SQLite (`sqlite:…`, the embedded mode) alike. Every
//! state change is a conditional `UPDATE … WHERE state = 'reserved'`, so two
//! racing changes of one order have exactly one winner.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Once;
use std::time::Duration;

use spike_core::order::{Order, OrderState, Refusal, Transition};
use spike_core::reconcile::EarlierFence;
use spike_core::record::{RULE_FIELDS, TRAIN_FIELD};
use spike_core::sale::SaleConfig;
use spike_core::SaleRecord;
use spike_core::{EventId, NodeId, OrderId, RequestId, SecretUrl, StreamEntry, UserId, WaitEntry};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row};

/// Why the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The URL names no supported database (the error shows its scheme only,
    /// never a password).
    #[error("unsupported database URL scheme {0:?} (use postgres://… or sqlite:…)")]
    UnsupportedUrl(String),
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row is not a valid order or sale.
    #[error("corrupt ledger row: {0}")]
    Corrupt(String),
    /// A sale the ledger has no rules for.
    #[error("sale {0} is not in the ledger")]
    UnknownSale(EventId),
    /// A recovery could not fence a sale in time: an insert held its row.
    #[error(
        "cannot fence sale {0}: an order writer held an insert open for longer than {limit:?} \
         (stalled?); stop the writers, or retry",
        limit = FENCE_LOCK_LIMIT
    )]
    FenceBlocked(EventId),
}

/// How long a ledger session may sit in an open transaction (PostgreSQL's
/// `idle_in_transaction_session_timeout`): a stalled writer's insert is
/// ended by the server, so it never holds a sale's row for longer.
pub const IDLE_IN_TRANSACTION_LIMIT: Duration = Duration::from_secs(10);

/// How long a recovery waits to fence a sale (longer than
/// [`IDLE_IN_TRANSACTION_LIMIT`], so that a stalled insert ends first).
pub const FENCE_LOCK_LIMIT: Duration = Duration::from_secs(30);

/// Which database a ledger is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL: the production ledger.
    Postgres,
    /// SQLite: the embedded mode's ledger.
    Sqlite,
}

/// What inserting a batch of stream entries did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Rows written now.
    pub written: u64,
    /// Entries already in the ledger, identical: replays, nothing changed.
    pub replayed: u64,
    /// Entries whose order id is already taken by a different sale (central
    /// stock lost state and handed the id out again); never written.
    pub conflicts: Vec<OrderId>,
    /// Entries from a life of central stock that a recovery closed, which
    /// the recovery did not restore (see [`OrderLedger::fence`]); never
    /// written: central stock does not count their seats.
    pub fenced: Vec<OrderId>,
}

/// Whether an insert honours a recovery's fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    /// Writers: entries behind the fence are refused.
    Honour,
    /// The recovery itself, writing the orders it restores.
    Pass,
}

/// What asking an order to move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// The order moved; here it is after the move.
    Applied(Order),
    /// The order did not move, and why; here it is as it stands.
    Refused(Order, Refusal),
    /// No such order in the ledger.
    NotFound,
}

/// Orders of one event counted by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Reserved orders.
    pub reserved: u64,
    /// Paid orders.
    pub paid: u64,
    /// Expired orders.
    pub expired: u64,
    /// Cancelled orders.
    pub cancelled: u64,
    /// Refunded orders.
    pub refunded: u64,
    /// Orders being changed for another ticket.
    pub changing: u64,
    /// Orders changed for another ticket.
    pub changed: u64,
    /// Expired, cancelled or refunded orders whose seat is not back in
    /// central stock yet.
    pub seats_owed: u64,
}

/// The schema's migrations, in order: version, name, and the SQL that
/// PostgreSQL and SQLite share, or each one's own.
const MIGRATIONS: [(i64, &str, MigrationSql); 10] = [
    (
        1,
        "orders",
        MigrationSql::Shared(include_str!("../migrations/0001_orders.sql")),
    ),
    (
        2,
        "token_auth",
        MigrationSql::Shared(include_str!("../migrations/0002_token_auth.sql")),
    ),
    (
        3,
        "recovery_fence",
        MigrationSql::Shared(include_str!("../migrations/0003_recovery_fence.sql")),
    ),
    (
        4,
        "waiting_room",
        MigrationSql::Shared(include_str!("../migrations/0004_waiting_room.sql")),
    ),
    (
        5,
        "byte_order_ids",
        MigrationSql::PostgresOnly(include_str!(
            "../migrations/0005_byte_order_ids.postgres.sql"
        )),
    ),
    (
        6,
        "train_seats",
        MigrationSql::Shared(include_str!("../migrations/0006_train_seats.sql")),
    ),
    (
        7,
        "fence_clock_and_life",
        MigrationSql::Shared(include_str!("../migrations/0007_fence_clock_and_life.sql")),
    ),
    (
        8,
        "queue_spillover",
        MigrationSql::Shared(include_str!("../migrations/0008_queue_spillover.sql")),
    ),
    (
        9,
        "refunds_and_changes",
        MigrationSql::Each {
            postgres: include_str!("../migrations/0009_refunds_and_changes.postgres.sql"),
            sqlite: include_str!("../migrations/0009_refunds_and_changes.sqlite.sql"),
        },
    ),
    (
        10,
        "waitlist",
        MigrationSql::Shared(include_str!("../migrations/0010_waitlist.sql")),
    ),
];

/// A migration's SQL.
#[derive(Debug, Clone, Copy)]
enum MigrationSql {
    /// The same on both backends.
    Shared(&'static str),
    /// PostgreSQL's; SQLite has nothing to do (the version is still recorded).
    PostgresOnly(&'static str),
    /// Each backend's own (SQLite cannot alter a table's constraints).
    Each {
        /// PostgreSQL's.
        postgres: &'static str,
        /// SQLite's.
        sqlite: &'static str,
    },
}

impl MigrationSql {
    /// The SQL `backend` runs.
    fn for_backend(self, backend: Backend) -> &'static str {
        match (self, backend) {
            (Self::Shared(sql), _) | (Self::PostgresOnly(sql), Backend::Postgres) => sql,
            (Self::PostgresOnly(_), Backend::Sqlite) => "SELECT 1;",
            (Self::Each { postgres, .. }, Backend::Postgres) => postgres,
            (Self::Each { sqlite, .. }, Backend::Sqlite) => sqlite,
        }
    }
}

const ORDER_COLUMNS: &str = "order_id, event_id, seq, user_id, request_id, node_id, state, \
     sold_at_ms, expires_at_ms, updated_at_ms, seat_returned_at_ms, ticket, change_event, \
     changed_to";

/// Rows per `INSERT` (SQLite's eleven parameters a row stay under its limit).
const INSERT_CHUNK: usize = 1_000;

fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, name, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(name),
                MigrationType::Simple,
                Cow::Borrowed(sql.for_backend(backend)),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// The statements that write and read the `sales` table, with its columns
/// named by the sale record's schema ([`RULE_FIELDS`]).
struct SaleStatements {
    insert: String,
    select: String,
}

static SALE_STATEMENTS: std::sync::LazyLock<SaleStatements> = std::sync::LazyLock::new(|| {
    let columns = RULE_FIELDS.join(", ");
    let updates: Vec<String> = (RULE_FIELDS.iter().chain([&TRAIN_FIELD]))
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    SaleStatements {
        // A new life of the sale starts without the old life's recovery fence.
        insert: format!(
            "INSERT INTO sales (event_id, {columns}, {TRAIN_FIELD}) VALUES ({}) \
             ON CONFLICT (event_id) DO UPDATE SET \
             fenced_through_seq = CASE WHEN sales.life = excluded.life \
               THEN sales.fenced_through_seq ELSE 0 END, \
             fenced_at_ms = CASE WHEN sales.life = excluded.life \
               THEN sales.fenced_at_ms ELSE 0 END, {}",
            placeholders(1, RULE_FIELDS.len() + 2),
            updates.join(", ")
        ),
        select: format!("SELECT {columns}, {TRAIN_FIELD} FROM sales WHERE event_id = $1"),
    }
});

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The comma-separated placeholders `$first … $(first+count-1)`.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns a new order's row is written with, in this order.
const INSERTED_COLUMNS: &str = "order_id, event_id, seq, user_id, request_id, node_id, state, \
     sold_at_ms, expires_at_ms, updated_at_ms, ticket";

/// Parameters a row of [`insert_values_sql`] binds.
const VALUES_PER_ROW: usize = 11;

/// A query of the `Any` driver.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// SQLite's path: one multi-row `INSERT … VALUES` of `rows` rows,
/// [`VALUES_PER_ROW`] parameters a row ([`bind_values`]).
fn insert_values_sql(rows: usize) -> String {
    let rows = (0..rows)
        .map(|i| format!("({})", placeholders(i * VALUES_PER_ROW + 1, VALUES_PER_ROW)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO orders ({INSERTED_COLUMNS}) VALUES {rows} \
         ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
    )
}

/// Binds [`insert_values_sql`]'s parameters.
fn bind_values<'q>(
    mut query: AnyQuery<'q>,
    chunk: &[&'q StreamEntry],
    window_ms: u64,
    now_ms: u64,
) -> AnyQuery<'q> {
    for entry in chunk {
        let event = entry.order.split().map(|(event, _)| event.to_string());
        query = query
            .bind(entry.order.as_str())
            .bind(event.unwrap_or_default())
            .bind(to_i64(entry.sequence))
            .bind(entry.user.as_ref().map(|u| u.as_str().to_owned()))
            .bind(entry.request.as_str())
            .bind(entry.node.as_str())
            .bind(OrderState::Reserved.as_str())
            .bind(to_i64(entry.sold_at_ms))
            .bind(to_i64(entry.sold_at_ms.saturating_add(window_ms)))
            .bind(to_i64(now_ms))
            .bind(entry.ticket.as_ref().map(ToString::to_string));
    }
    query
}

/// PostgreSQL's bulk path: `INSERT … SELECT FROM UNNEST(arrays)`, one array
/// a column whatever the number of rows, so one short statement (prepared
/// once per connection) is planned per chunk instead of one with ten
/// parameters a row. sqlx's `Any` driver binds no arrays, so each goes as
/// its text form ([`pg_array`]) and PostgreSQL casts it.
const INSERT_UNNEST: &str = "INSERT INTO orders (order_id, event_id, seq, user_id, request_id, \
     node_id, state, sold_at_ms, expires_at_ms, updated_at_ms, ticket) \
     SELECT o, e, s, u, r, n, $9, t, t + $10, $11, k \
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
                 $7::bigint[], $8::text[]) AS x(o, e, s, u, r, n, t, k) \
     ON CONFLICT (order_id) DO NOTHING RETURNING order_id";

/// Binds [`INSERT_UNNEST`]'s parameters: eight columns, then the state,
/// the payment window and the time.
fn bind_unnest<'q>(
    query: AnyQuery<'q>,
    chunk: &[&'q StreamEntry],
    window_ms: u64,
    now_ms: u64,
) -> AnyQuery<'q> {
    let column = |value: &dyn Fn(&StreamEntry) -> Option<String>| {
        pg_array(chunk.iter().map(|entry| value(entry)))
    };
    query
        .bind(column(&|e| Some(e.order.to_string())))
        .bind(column(&|e| {
            e.order.split().map(|(event, _)| event.to_string())
        }))
        .bind(column(&|e| Some(e.sequence.to_string())))
        .bind(column(&|e| e.user.as_ref().map(UserId::to_string)))
        .bind(column(&|e| Some(e.request.to_string())))
        .bind(column(&|e| Some(e.node.to_string())))
        .bind(column(&|e| Some(e.sold_at_ms.to_string())))
        .bind(column(&|e| e.ticket.as_ref().map(ToString::to_string)))
        .bind(OrderState::Reserved.as_str())
        .bind(to_i64(window_ms))
        .bind(to_i64(now_ms))
}

/// A PostgreSQL array literal: `{"a","b",NULL}`, each element quoted, with
/// `"` and `\` escaped.
fn pg_array(items: impl Iterator<Item = Option<String>>) -> String {
    let mut literal = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            literal.push(',');
        }
        match item {
            None => literal.push_str("NULL"),
            Some(text) => {
                literal.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        literal.push('\\');
                    }
                    literal.push(c);
                }
                literal.push('"');
            }
        }
    }
    literal.push('}');
    literal
}

fn order_from_row(row: &AnyRow) -> Result<Order, LedgerError> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let number = |name: &str| row.try_get::<i64, _>(name).map(to_u64);
    let id = text("order_id")?;
    let corrupt = |what: &str| LedgerError::Corrupt(format!("order {id}: bad {what}"));
    let user = row.try_get::<Option<String>, _>("user_id")?;
    Ok(Order {
        id: OrderId::parse(id.as_str()).map_err(|_| corrupt("id"))?,
        event: EventId::parse(text("event_id")?).map_err(|_| corrupt("event"))?,
        sequence: number("seq")?,
        user: user
            .map(UserId::parse)
            .transpose()
            .map_err(|_| corrupt("user"))?,
        request: RequestId::parse(text("request_id")?).map_err(|_| corrupt("request"))?,
        node: NodeId::parse(text("node_id")?).map_err(|_| corrupt("node"))?,
        state: OrderState::parse(&text("state")?).map_err(|_| corrupt("state"))?,
        sold_at_ms: number("sold_at_ms")?,
        expires_at_ms: number("expires_at_ms")?,
        updated_at_ms: number("updated_at_ms")?,
        seat_returned_at_ms: row
            .try_get::<Option<i64>, _>("seat_returned_at_ms")?
            .map(to_u64),
        ticket: (row.try_get::<Option<String>, _>("ticket")?)
            .map(|t| t.parse())
            .transpose()
            .map_err(|_| corrupt("ticket"))?,
        change_event: (row.try_get::<Option<String>, _>("change_event")?)
            .map(EventId::parse)
            .transpose()
            .map_err(|_| corrupt("change_event"))?,
        changed_to: (row.try_get::<Option<String>, _>("changed_to")?)
            .map(OrderId::parse)
            .transpose()
            .map_err(|_| corrupt("changed_to"))?,
    })
}

/// The durable order ledger.
#[derive(Debug, Clone)]
pub struct OrderLedger {
    pool: AnyPool,
    backend: Backend,
}

impl OrderLedger {
    /// Connects to `url` and brings its schema up to date. A SQLite file is
    /// created if missing.
    ///
    /// SQLite ledgers use one connection (SQLite has one writer anyway, and an
    /// in-memory database lives only as long as its connection).
    pub async fn connect(url: impl Into<SecretUrl>) -> Result<Self, LedgerError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let secret = url.into();
        let backend = match secret.scheme() {
            "postgres" | "postgresql" => Backend::Postgres,
            "sqlite" => Backend::Sqlite,
            scheme => return Err(LedgerError::UnsupportedUrl(scheme.to_owned())),
        };
        let url = secret.expose();
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let options = match backend {
            Backend::Postgres => options.max_connections(8).after_connect(|connection, _| {
                Box::pin(async move {
                    let limit = IDLE_IN_TRANSACTION_LIMIT.as_millis();
                    connection
                        .execute(
                            format!("SET idle_in_transaction_session_timeout = {limit}").as_str(),
                        )
                        .await
                        .map(|_| ())
                })
            }),
            Backend::Sqlite => options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        connection
                            .execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;")
                            .await
                            .map(|_| ())
                    })
                }),
        };
        let url = match backend {
            // A SQLite file is created when missing, unless the URL says otherwise.
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let pool = options.connect(&url).await?;
        migrator(backend).run(&pool).await?;
        Ok(Self { pool, backend })
    }

    /// Which database this ledger is in.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Records (or updates) a sale's rules. A new life of the sale (created
    /// again with `--force`) starts without the old life's recovery fence:
    /// its sequences count from 1 again.
    pub async fn record_sale(
        &self,
        event: &EventId,
        config: &SaleConfig,
    ) -> Result<(), LedgerError> {
        let record = SaleRecord::from(config);
        let mut insert = sqlx::query(&SALE_STATEMENTS.insert).bind(event.as_str());
        for value in record.rules() {
            insert = insert.bind(to_i64(value));
        }
        insert.bind(record.train_wire()).execute(&self.pool).await?;
        Ok(())
    }

    /// A sale's recorded rules.
    pub async fn sale(&self, event: &EventId) -> Result<Option<SaleConfig>, LedgerError> {
        let row = sqlx::query(&SALE_STATEMENTS.select)
            .bind(event.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut rules = [0; RULE_FIELDS.len()];
        for (value, name) in rules.iter_mut().zip(RULE_FIELDS) {
            *value = to_u64(row.try_get::<i64, _>(name)?);
        }
        let train = SaleRecord::parse_train(&row.try_get::<String, _>(TRAIN_FIELD)?)
            .map_err(|e| LedgerError::Corrupt(format!("sale {event}: train layout: {e}")))?;
        let record = SaleRecord::from_rules(rules, train);
        let config = SaleConfig::try_from(record)
            .map_err(|e| LedgerError::Corrupt(format!("sale {event}: {e}")))?;
        Ok(Some(config))
    }

    /// Closes the life of central stock that a recovery replaces: from now
    /// on, [`OrderLedger::insert`] refuses entries of `event` with sequences
    /// up to the fence this returns, and the new life starts above it.
    /// Waits for inserts under way to commit first, so that the recovery,
    /// reading the ledger after this, sees every order of that life anyone
    /// wrote.
    ///
    /// The fence is the highest of `at_least` (the records' highest
    /// sequence), [`fence_floor`] of the database's clock now, and the
    /// earlier fence moved on by the sequences its life could have handed
    /// out since it was raised (measured on the same clock): so it never
    /// goes down, and never lands inside the life it closes, whatever the
    /// clocks of the hosts that run recoveries say.
    pub async fn fence(&self, event: &EventId, at_least: u64) -> Result<u64, LedgerError> {
        let blocked = |error: sqlx::Error| match &error {
            // 55P03: lock_not_available (the lock timeout passed).
            sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => {
                LedgerError::FenceBlocked(event.clone())
            }
            _ => LedgerError::Database(error),
        };
        let mut transaction = self.pool.begin().await?;
        let (lock, clock) = match self.backend {
            Backend::Postgres => {
                let limit = FENCE_LOCK_LIMIT.as_millis();
                sqlx::query(&format!("SET LOCAL lock_timeout = {limit}"))
                    .execute(&mut *transaction)
                    .await?;
                (
                    " FOR UPDATE",
                    "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
                )
            }
            // One writer at a time: SQLite's transaction is the lock.
            Backend::Sqlite => (
                "",
                "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            ),
        };
        let row = sqlx::query(&format!(
            "SELECT fenced_through_seq, fenced_at_ms, {clock} AS now_ms \
             FROM sales WHERE event_id = $1{lock}"
        ))
        .bind(event.as_str())
        .fetch_optional(&mut *transaction)
        .await
        .map_err(blocked)?
        .ok_or_else(|| LedgerError::UnknownSale(event.clone()))?;
        let earlier = EarlierFence {
            through: to_u64(row.try_get::<i64, _>("fenced_through_seq")?),
            at_ms: to_u64(row.try_get::<i64, _>("fenced_at_ms")?),
        };
        let now_ms = to_u64(row.try_get::<i64, _>("now_ms")?);
        let fence = earlier.next(now_ms, at_least);
        sqlx::query(
            "UPDATE sales SET fenced_through_seq = $2, fenced_at_ms = $3 WHERE event_id = $1",
        )
        .bind(event.as_str())
        .bind(to_i64(fence))
        .bind(to_i64(now_ms))
        .execute(&mut *transaction)
        .await
        .map_err(blocked)?;
        transaction.commit().await?;
        Ok(fence)
    }

    /// Writes stream entries as reserved orders, all or nothing, in one
    /// transaction. An entry already in the ledger changes nothing; an
    /// entry behind a recovery's fence is refused (`fenced`).
    pub async fn insert(
        &self,
        entries: &[StreamEntry],
        payment_window: Duration,
        now_ms: u64,
    ) -> Result<Inserted, LedgerError> {
        self.insert_entries(entries, payment_window, now_ms, Fence::Honour)
            .await
    }

    /// Writes the orders a recovery restores (of the life it closed, so
    /// behind its own fence), otherwise as [`OrderLedger::insert`].
    pub async fn insert_recovered(
        &self,
        entries: &[StreamEntry],
        payment_window: Duration,
        now_ms: u64,
    ) -> Result<Inserted, LedgerError> {
        self.insert_entries(entries, payment_window, now_ms, Fence::Pass)
            .await
    }

    async fn insert_entries(
        &self,
        entries: &[StreamEntry],
        payment_window: Duration,
        now_ms: u64,
        fence: Fence,
    ) -> Result<Inserted, LedgerError> {
        let window_ms = u64::try_from(payment_window.as_millis()).unwrap_or(u64::MAX);
        let mut transaction = self.pool.begin().await?;
        let mut fences: HashMap<String, u64> = HashMap::new();
        if fence == Fence::Honour {
            // FOR SHARE (PostgreSQL): a recovery's fence waits for this
            // transaction, and this one for a fence being raised. SQLite
            // has one writer at a time anyway.
            let lock = match self.backend {
                Backend::Postgres => " FOR SHARE",
                Backend::Sqlite => "",
            };
            let sql = format!("SELECT fenced_through_seq FROM sales WHERE event_id = $1{lock}");
            for entry in entries {
                let Some((event, _)) = entry.order.split() else {
                    continue;
                };
                if fences.contains_key(event.as_str()) {
                    continue;
                }
                let row = sqlx::query(&sql)
                    .bind(event.as_str())
                    .fetch_optional(&mut *transaction)
                    .await?;
                let through = match row {
                    Some(row) => to_u64(row.try_get::<i64, _>("fenced_through_seq")?),
                    None => 0,
                };
                fences.insert(event.to_string(), through);
            }
        }
        let behind_fence = |entry: &StreamEntry| {
            (entry.order.split())
                .and_then(|(event, _)| fences.get(event.as_str()))
                .is_some_and(|&through| entry.sequence <= through)
        };
        let (admitted, held_back): (Vec<&StreamEntry>, Vec<&StreamEntry>) =
            entries.iter().partition(|entry| !behind_fence(entry));
        let mut written: Vec<String> = Vec::with_capacity(admitted.len());
        for chunk in admitted.chunks(INSERT_CHUNK) {
            let sql = match self.backend {
                Backend::Postgres => Cow::Borrowed(INSERT_UNNEST),
                Backend::Sqlite => Cow::Owned(insert_values_sql(chunk.len())),
            };
            let query = match self.backend {
                Backend::Postgres => bind_unnest(sqlx::query(&sql), chunk, window_ms, now_ms),
                Backend::Sqlite => bind_values(sqlx::query(&sql), chunk, window_ms, now_ms),
            };
            for row in query.fetch_all(&mut *transaction).await? {
                written.push(row.try_get("order_id")?);
            }
        }
        transaction.commit().await?;
        let mut inserted = Inserted {
            written: written.len() as u64,
            ..Inserted::default()
        };
        written.sort_unstable();
        for entry in entries {
            if written
                .binary_search_by(|w| w.as_str().cmp(entry.order.as_str()))
                .is_ok()
            {
                continue;
            }
            match self.order(&entry.order).await? {
                Some(order) if order.request == entry.request && order.user == entry.user => {
                    inserted.replayed += 1;
                }
                _ if held_back.iter().any(|held| held.order == entry.order) => {
                    inserted.fenced.push(entry.order.clone());
                }
                _ => inserted.conflicts.push(entry.order.clone()),
            }
        }
        Ok(inserted)
    }

    /// One order.
    pub async fn order(&self, id: &OrderId) -> Result<Option<Order>, LedgerError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    /// A user's orders, newest first, at most `limit`.
    pub async fn orders_of_user(
        &self,
        user: &UserId,
        limit: u32,
    ) -> Result<Vec<Order>, LedgerError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
             ORDER BY sold_at_ms DESC, order_id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Every order of one event, by sequence (audits and recovery).
    pub async fn orders_of_event(&self, event: &EventId) -> Result<Vec<Order>, LedgerError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE event_id = $1 ORDER BY seq");
        let rows = sqlx::query(&sql)
            .bind(event.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Moves one order, if and only if it is reserved and the payment window
    /// allows the move at `now_ms`.
    pub async fn apply(
        &self,
        id: &OrderId,
        transition: Transition,
        now_ms: u64,
    ) -> Result<Moved, LedgerError> {
        self.apply_setting(id, transition, now_ms, None).await
    }

    /// [`OrderLedger::apply`], also setting `column` to `value` in the same
    /// conditional update (a change's run or new order).
    async fn apply_setting(
        &self,
        id: &OrderId,
        transition: Transition,
        now_ms: u64,
        setting: Option<(&str, &str)>,
    ) -> Result<Moved, LedgerError> {
        let timing = match transition {
            Transition::Pay | Transition::Cancel => "expires_at_ms > $2",
            Transition::Expire => "expires_at_ms <= $2",
            Transition::Refund
            | Transition::BeginChange
            | Transition::FinishChange
            | Transition::UndoChange => "1 = 1",
        };
        let source = transition.source().as_str();
        let set = match setting {
            Some((column, _)) => format!(", {column} = $4"),
            None => String::new(),
        };
        let sql = format!(
            "UPDATE orders SET state = $1, updated_at_ms = $2{set} \
             WHERE order_id = $3 AND state = '{source}' AND {timing} RETURNING {ORDER_COLUMNS}"
        );
        // Twice at most: a writer may insert the order between a first
        // update that found nothing and the read after it, and then the
        // update is due again.
        for _ in 0..2 {
            let mut query = sqlx::query(&sql)
                .bind(transition.target().as_str())
                .bind(to_i64(now_ms))
                .bind(id.as_str());
            if let Some((_, value)) = setting {
                query = query.bind(value);
            }
            if let Some(row) = query.fetch_optional(&self.pool).await? {
                return Ok(Moved::Applied(order_from_row(&row)?));
            }
            let Some(order) = self.order(id).await? else {
                return Ok(Moved::NotFound);
            };
            if let Some(refusal) = transition.refusal(order.state, order.expires_at_ms, now_ms) {
                return Ok(Moved::Refused(order, refusal));
            }
        }
        let Some(order) = self.order(id).await? else {
            return Ok(Moved::NotFound);
        };
        let refusal = Refusal::Finished(order.state);
        Ok(Moved::Refused(order, refusal))
    }

    /// Copies waitlist `entries` of `event` into the mirror (each replaces
    /// the one at its place).
    pub async fn mirror_waitlist(
        &self,
        event: &EventId,
        entries: &[WaitEntry],
    ) -> Result<(), LedgerError> {
        let mut transaction = self.pool.begin().await?;
        for entry in entries {
            sqlx::query(
                "INSERT INTO waitlist (event_id, place, entry) VALUES ($1, $2, $3) \
                 ON CONFLICT (event_id, place) DO UPDATE SET entry = excluded.entry",
            )
            .bind(event.as_str())
            .bind(to_i64(entry.place))
            .bind(entry.to_wire())
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The mirror of `event`'s waitlist, in place order.
    pub async fn waitlist(&self, event: &EventId) -> Result<Vec<WaitEntry>, LedgerError> {
        let rows =
            sqlx::query("SELECT place, entry FROM waitlist WHERE event_id = $1 ORDER BY place")
                .bind(event.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let place = to_u64(row.try_get::<i64, _>("place")?);
                let wire = row.try_get::<String, _>("entry")?;
                WaitEntry::parse(place, &wire)
                    .map_err(|e| LedgerError::Corrupt(format!("waitlist of {event}: {e}")))
            })
            .collect()
    }

    /// Starts changing a paid order for a ticket on `to` (paid → changing).
    pub async fn begin_change(
        &self,
        id: &OrderId,
        to: &EventId,
        now_ms: u64,
    ) -> Result<Moved, LedgerError> {
        let setting = Some(("change_event", to.as_str()));
        self.apply_setting(id, Transition::BeginChange, now_ms, setting)
            .await
    }

    /// Ends a change that got its new ticket, in one transaction: the new
    /// order (written already) is paid, whatever its payment window, and
    /// the old one is `changed` to it (its seat now owed). `Ok(false)` when
    /// the old order was not changing, or the new one not reserved or paid:
    /// nothing changed.
    pub async fn finish_change(
        &self,
        old: &OrderId,
        new: &OrderId,
        now_ms: u64,
    ) -> Result<bool, LedgerError> {
        let mut transaction = self.pool.begin().await?;
        let paid = sqlx::query(
            "UPDATE orders SET state = 'paid', updated_at_ms = $1 \
             WHERE order_id = $2 AND state IN ('reserved', 'paid')",
        )
        .bind(to_i64(now_ms))
        .bind(new.as_str())
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        let changed = sqlx::query(
            "UPDATE orders SET state = 'changed', updated_at_ms = $1, changed_to = $2 \
             WHERE order_id = $3 AND state = 'changing'",
        )
        .bind(to_i64(now_ms))
        .bind(new.as_str())
        .bind(old.as_str())
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if paid == 1 && changed == 1 {
            transaction.commit().await?;
            return Ok(true);
        }
        transaction.rollback().await?;
        Ok(false)
    }

    /// Ends a change that got no new ticket: the order is paid again.
    pub async fn undo_change(&self, id: &OrderId, now_ms: u64) -> Result<Moved, LedgerError> {
        self.apply(id, Transition::UndoChange, now_ms).await
    }

    /// Up to `max` orders changing since `before_ms` or earlier: changes a
    /// crash left midway, for [`crate::OrderDesk::settle_changes`].
    pub async fn stalled_changes(
        &self,
        before_ms: u64,
        max: u32,
    ) -> Result<Vec<Order>, LedgerError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE state = 'changing' \
             AND updated_at_ms <= $1 ORDER BY updated_at_ms LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(to_i64(before_ms))
            .bind(i64::from(max))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Expires up to `max` reserved orders whose payment window closed by
    /// `now_ms`; returns those this call expired.
    pub async fn expire_due(&self, now_ms: u64, max: u32) -> Result<Vec<Order>, LedgerError> {
        let sql = format!(
            "UPDATE orders SET state = 'expired', updated_at_ms = $1 \
             WHERE order_id IN (SELECT order_id FROM orders \
                 WHERE state = 'reserved' AND expires_at_ms <= $1 LIMIT $2) \
             AND state = 'reserved' AND expires_at_ms <= $1 RETURNING {ORDER_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(to_i64(now_ms))
            .bind(i64::from(max))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Up to `max` expired, cancelled, refunded or changed orders whose seat
    /// is not back in central stock yet (the outbox of seat returns).
    pub async fn seats_owed(&self, max: u32) -> Result<Vec<Order>, LedgerError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders \
             WHERE state IN ('expired', 'cancelled', 'refunded', 'changed') \
             AND seat_returned_at_ms IS NULL ORDER BY updated_at_ms LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(max))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Records that these orders' seats are back in central stock.
    pub async fn mark_returned(&self, ids: &[OrderId], now_ms: u64) -> Result<u64, LedgerError> {
        let mut marked = 0;
        for chunk in ids.chunks(INSERT_CHUNK) {
            let sql = format!(
                "UPDATE orders SET seat_returned_at_ms = $1 \
                 WHERE seat_returned_at_ms IS NULL AND order_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(to_i64(now_ms));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            marked += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(marked)
    }

    /// One event's orders counted by state.
    pub async fn counts(&self, event: &EventId) -> Result<StateCounts, LedgerError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS orders, \
             SUM(CASE WHEN seat_returned_at_ms IS NULL THEN 1 ELSE 0 END) AS unreturned \
             FROM orders WHERE event_id = $1 GROUP BY state",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut counts = StateCounts::default();
        for row in rows {
            let state = row.try_get::<String, _>("state")?;
            let state =
                OrderState::parse(&state).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            let orders = to_u64(row.try_get("orders")?);
            let unreturned = to_u64(row.try_get("unreturned")?);
            match state {
                OrderState::Reserved => counts.reserved = orders,
                OrderState::Paid => counts.paid = orders,
                OrderState::Expired => counts.expired = orders,
                OrderState::Cancelled => counts.cancelled = orders,
                OrderState::Refunded => counts.refunded = orders,
                OrderState::Changing => counts.changing = orders,
                OrderState::Changed => counts.changed = orders,
            }
            if !state.holds_seat() {
                counts.seats_owed += unreturned;
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element() {
        let items = [Some("a".to_string()), None, Some(r#"q"u\o{,}"#.to_string())];
        assert_eq!(pg_array(items.into_iter()), r#"{"a",NULL,"q\"u\\o{,}"}"#);
        assert_eq!(pg_array(std::iter::empty()), "{}");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_echoing_secrets() {
        let error = OrderLedger::connect("mysql://root:hunter2@db/spike")
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"mysql\""), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
