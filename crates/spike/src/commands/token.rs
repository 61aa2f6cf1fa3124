//! `spike token`: prints a buyer token (an HS256 JWT) signed with the first
//! key of a key file, as the operator's login system would issue it.

use std::time::SystemTime;

use spike_auth::{mint, KeyRing};

use crate::cli::TokenArgs;

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
