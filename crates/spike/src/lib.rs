//! The `spike` application: the wiring of a node ([`app`]), the command
//! line's argument types ([`cli`]), how flags, environment and a file
//! combine into them ([`config`]), what each subcommand does
//! ([`commands`]), and errors told in the flags' words ([`flags`]). `main.rs` only loads the configuration, builds the
//! runtime and reports errors.

#![warn(missing_docs)]

pub mod app;
pub mod args;
pub mod cli;
pub mod commands;
pub mod config;
pub mod flags;
