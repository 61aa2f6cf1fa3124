//! `spike scripts`: prints the Lua scripts central stock runs in Redis,
//! exactly as Redis receives them (with the prelude naming their reply
//! codes), for review or for `redis-benchmark`.

use anyhow::bail;
use clap::Args;
use spike_redis::{script_names, script_source};

/// `spike scripts`
#[derive(Debug, Args)]
pub struct ScriptsArgs {
    /// The script to print (buy, release, create, snapshot, ack); none: list their names.
    pub name: Option<String>,
}

/// Prints one script, or the names of all of them.
pub fn print_scripts(args: ScriptsArgs) -> anyhow::Result<()> {
    let Some(name) = args.name else {
        println!("{}", script_names().join("\n"));
        return Ok(());
    };
    match script_source(&name) {
        Some(source) => print!("{source}"),
        None => bail!("no script {name:?}; see `spike scripts` for their names"),
    }
    Ok(())
}
