//! The `spike` command line: argument types and what each subcommand does.
//! `main.rs` only parses arguments, builds the runtime and reports errors.

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
