//! The `spike` application: the wiring of a node ([`app`]), the command
//! line's argument types ([`cli`]) and what each subcommand does
//! ([`commands`]). `main.rs` only parses arguments, builds the runtime and
//! reports errors.

#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod commands;
