//! `spike sale pause|resume|log` and `spike queue show|set|revoke|reinstate`: an
//! operator's live controls, sent to one node's admin surface with the
//! operator key (the node applies them through central stock, and every
//! node follows within a second).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::Value;
use spike_auth::KeyRing;
use spike_core::control::Action;
use spike_core::{EventId, OperatorName, UserId};

use super::http_client::exchange;

/// Which node, which sale, and the operator key: what every control needs.
#[derive(Debug, Args)]
pub struct AdminTarget {
    /// A node's admin surface, e.g. http://127.0.0.1:9101 (its --admin-listen).
    #[arg(long, env = "SPIKE_ADMIN")]
    pub admin: String,
    /// The sale (the node's first event when absent).
    #[arg(long)]
    pub event: Option<EventId>,
    /// The operator key file the nodes were given (--operator-key-file).
    #[arg(long, env = "SPIKE_OPERATOR_KEY_FILE")]
    pub operator_key_file: PathBuf,
}

/// Who gives a control, recorded in the operator log.
#[derive(Debug, Args)]
pub struct Operator {
    /// Your name in the operator log: [A-Za-z0-9_.@-]{1,64}.
    #[arg(long, env = "SPIKE_OPERATOR")]
    pub by: OperatorName,
}

/// `spike sale pause` and `spike sale resume`
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The node, the sale and the key.
    #[command(flatten)]
    pub target: AdminTarget,
    /// Who pauses or resumes.
    #[command(flatten)]
    pub operator: Operator,
}

/// `spike sale log`
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The node, the sale and the key.
    #[command(flatten)]
    pub target: AdminTarget,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `spike queue …`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Print a waiting room's figures: joined, admitted, active, rate, and the wait of the last in line.
    Show(QueueShowArgs),
    /// Change a waiting room's admission rate and cap, live.
    Set(QueueSetArgs),
    /// Revoke a buyer's admission: their purchases are refused, with your reason.
    Revoke(QueueRevokeArgs),
    /// Give a revoked admission back (a revocation made by mistake).
    Reinstate(QueueReinstateArgs),
}

/// `spike queue reinstate`
#[derive(Debug, Args)]
pub struct QueueReinstateArgs {
    /// The node, the sale and the key.
    #[command(flatten)]
    pub target: AdminTarget,
    /// Who reinstates it.
    #[command(flatten)]
    pub operator: Operator,
    /// The buyer whose admission is given back.
    #[arg(long)]
    pub user: UserId,
}

/// `spike queue show`
#[derive(Debug, Args)]
pub struct QueueShowArgs {
    /// The node, the sale and the key.
    #[command(flatten)]
    pub target: AdminTarget,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `spike queue set`
#[derive(Debug, Args)]
pub struct QueueSetArgs {
    /// The node, the sale and the key.
    #[command(flatten)]
    pub target: AdminTarget,
    /// Who changes it.
    #[command(flatten)]
    pub operator: Operator,
    /// Admissions a second (1 to 1,000,000).
    #[arg(long)]
    pub rate: u32,
    /// The most admitted buyers active at once (0: no cap).
    #[arg(long, default_value_t = 0)]
    pub max_active: u64,
}

/// `spike queue revoke`
#[derive(Debug, Args)]
pub struct QueueRevokeArgs {
    /// The node, the sale and the key.
    #[command(flatten)]
    pub target: AdminTarget,
    /// Who revokes it.
    #[command(flatten)]
    pub operator: Operator,
    /// The buyer whose admission is revoked.
    #[arg(long)]
    pub user: UserId,
    /// What the buyer is told (1-200 bytes).
    #[arg(long)]
    pub reason: String,
}

/// Percent-encodes a query value.
fn encoded(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl AdminTarget {
    /// `path?event=…&extra`, sent with the operator key; the answer's `data`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let keys = KeyRing::from_file(&self.operator_key_file)?;
        let key = std::str::from_utf8(keys.signing().expose())
            .context("the operator key is not text")?
            .to_owned();
        let mut query: Vec<String> = self.event.iter().map(|e| format!("event={e}")).collect();
        query.extend(
            extra
                .iter()
                .map(|(name, value)| format!("{name}={}", encoded(value))),
        );
        let url = format!(
            "{}{path}?{}",
            self.admin.trim_end_matches('/'),
            query.join("&")
        );
        let (status, answer) = exchange(method, &url, Some(&key), CONTROL_DEADLINE).await?;
        if !status.is_success() {
            let why = answer["data"]["reason"].as_str().or(answer["msg"].as_str());
            anyhow::bail!(
                "{path} answered {status}: {}",
                why.unwrap_or("no reason given")
            );
        }
        Ok(answer["data"].clone())
    }
}

/// How long a control may take to be answered.
const CONTROL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// One operator log entry, on one line.
fn entry_line(entry: &Value) -> String {
    let at = entry["at_ms"].as_u64().map_or("?".to_owned(), |ms| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_millis(at).to_string()
    });
    let action = entry["action"].as_str().and_then(Action::parse);
    let details = match action {
        Some(Action::Admission) => format!(
            " rate {}/s → {}/s, max active {} → {}",
            entry["was_admit_rate_per_s"],
            entry["admit_rate_per_s"],
            cap(&entry["was_max_active"]),
            cap(&entry["max_active"]),
        ),
        Some(Action::Reinstate) => format!(" {}", entry["user_id"].as_str().unwrap_or("?")),
        Some(Action::Revoke) => format!(
            " {}: {}",
            entry["user_id"].as_str().unwrap_or("?"),
            entry["reason"].as_str().unwrap_or("")
        ),
        _ => String::new(),
    };
    format!(
        "#{} {at} {} {}{details}",
        entry["index"],
        entry["by"].as_str().unwrap_or("?"),
        entry["action"].as_str().unwrap_or("?"),
    )
}

fn cap(value: &Value) -> String {
    value
        .as_u64()
        .map_or("none".to_owned(), |cap| cap.to_string())
}

/// `spike sale pause`.
pub async fn sale_pause(args: PauseArgs) -> anyhow::Result<()> {
    let by = args.operator.by.to_string();
    give(&args.target, "/control/pause", &[("by", &by)]).await
}

/// `spike sale resume`.
pub async fn sale_resume(args: PauseArgs) -> anyhow::Result<()> {
    let by = args.operator.by.to_string();
    give(&args.target, "/control/resume", &[("by", &by)]).await
}

/// Gives one control and prints the log entry it became.
async fn give(target: &AdminTarget, path: &str, extra: &[(&str, &str)]) -> anyhow::Result<()> {
    let entry = target.call(Method::POST, path, extra).await?;
    println!("{}", entry_line(&entry));
    Ok(())
}

/// `spike sale log`.
pub async fn sale_log(args: LogArgs) -> anyhow::Result<()> {
    let log = args.target.call(Method::GET, "/control/log", &[]).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&log)?);
        return Ok(());
    }
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!(
            "no operator control was given to {}",
            log["event"].as_str().unwrap_or("the sale")
        );
    }
    for entry in entries {
        println!("{}", entry_line(&entry));
    }
    Ok(())
}

/// `spike queue …`.
pub async fn run_queue(command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::Show(args) => queue_show(args).await,
        QueueCommand::Set(args) => {
            let (by, rate, cap) = (
                args.operator.by.to_string(),
                args.rate.to_string(),
                args.max_active.to_string(),
            );
            let extra = [("by", by.as_str()), ("rate", &rate), ("max_active", &cap)];
            give(&args.target, "/control/admission", &extra).await
        }
        QueueCommand::Revoke(args) => {
            let (by, user) = (args.operator.by.to_string(), args.user.to_string());
            let extra = [
                ("by", by.as_str()),
                ("user_id", &user),
                ("reason", &args.reason),
            ];
            give(&args.target, "/control/revoke", &extra).await
        }
        QueueCommand::Reinstate(args) => {
            let (by, user) = (args.operator.by.to_string(), args.user.to_string());
            let extra = [("by", by.as_str()), ("user_id", &user)];
            give(&args.target, "/control/reinstate", &extra).await
        }
    }
}

async fn queue_show(args: QueueShowArgs) -> anyhow::Result<()> {
    let room = args.target.call(Method::GET, "/control/queue", &[]).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&room)?);
        return Ok(());
    }
    let wait = room["last_in_line_wait_ms"].as_u64().unwrap_or(0);
    let wait = humantime::format_duration(std::time::Duration::from_secs(wait.div_ceil(1000)));
    println!(
        "event            {}\npaused           {}\nmode             {}\njoined           {}\n\
         admitted         {}\nactive           {}\nwaiting          {}\nrate             {}/s\n\
         max active       {}\nrevoked          {}\nlast in line     about {wait} to wait",
        room["event"].as_str().unwrap_or("?"),
        room["paused"],
        room["mode"].as_str().unwrap_or("?"),
        room["joined"],
        room["admitted"],
        room["active"],
        room["waiting"],
        room["admit_rate_per_s"],
        cap(&room["max_active"]),
        room["revoked"],
    );
    Ok(())
}
