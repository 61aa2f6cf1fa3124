//! `spike token`: prints a buyer token (an HS256 JWT) signed with the first
//! key of a key file, as the operator's login system would issue it.

use std::time::SystemTime;

use crate::args::parse_positive_duration;
use clap::Args;
use spike_auth::{mint, KeyRing};
use spike_core::EventId;
use spike_core::UserId;
use std::path::PathBuf;

/// `spike token`
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The key file the nodes verify with (its first key signs).
    #[arg(long, env = "SPIKE_TOKEN_KEY_FILE")]
    pub key_file: PathBuf,
    /// The buyer (the token's `sub`).
    #[arg(long)]
    pub user: UserId,
    /// How long the token is valid (longer than zero).
    #[arg(long, default_value = "1h", value_parser = parse_positive_duration)]
    pub ttl: humantime::Duration,
    /// Bind the token to one sale (its `aud`).
    #[arg(long)]
    pub event: Option<EventId>,
}

/// Prints one token.
pub fn print_token(args: TokenArgs) -> anyhow::Result<()> {
    let keys = KeyRing::from_file(&args.key_file)?;
    let token = mint(
        keys.signing(),
        &args.user,
        SystemTime::now(),
        args.ttl.into(),
        args.event.as_ref(),
    );
    println!("{token}");
    Ok(())
}
