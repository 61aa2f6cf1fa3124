//! Layered configuration. Every flag of every command can also be set by a
//! `SPIKE_…` environment variable (the flag's name in capitals, `-` as
//! `_`: `--rate-limit-per-ip` is `SPIKE_RATE_LIMIT_PER_IP`) and by a TOML
//! file (`--config FILE` or `SPIKE_CONFIG`) whose keys are the flags' names.
//! A flag beats the environment, which beats the file, which beats the
//! default. `--print-config` shows the result with its sources, secrets
//! redacted.
//!
//! The layering is clap's own: the environment through each argument's
//! `env`, and the file by handing clap, as flags, the settings that neither
//! the command line nor the environment gave. So a value from the file is
//! parsed and checked exactly as the same flag would be.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};
use spike_core::SecretUrl;

use crate::cli::{Cli, CONFIG_ENV};

/// Arguments that are about the configuration itself: neither in the file
/// nor in `--print-config`.
const NOT_SETTINGS: [&str; 4] = ["help", "version", "config", "print_config"];

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the configuration file {path} is not TOML: {message}")]
    NotToml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key names no flag of the command.
    #[error("{path}: `{key}` is not a setting of `{command}`; its settings are: {known}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The command run.
        command: String,
        /// Its settings.
        known: String,
    },
    /// A value is a table, a date or a list of lists.
    #[error("{path}: `{key}` must be a string, a number, a boolean, or a list of those")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// The arguments themselves are wrong (or ask for help).
    #[error(transparent)]
    Arguments(#[from] clap::Error),
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// This environment variable.
    Environment(String),
    /// The configuration file.
    File,
    /// The flag's default.
    Default,
}

/// One setting of the command run, as it took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The flag's name (`rate-limit-per-ip`), also its key in the file.
    pub name: String,
    /// Its value as TOML (`"127.0.0.1:3005"`, `4`, `true`, `["a", "b"]`),
    /// a secret redacted; `None` when unset.
    pub value: Option<String>,
    /// Where the value came from (`None` when unset).
    pub source: Option<Source>,
}

/// The parsed command line, and the settings of the command it runs.
#[derive(Debug)]
pub struct Loaded {
    /// The arguments, every layer applied.
    pub cli: Cli,
    /// The invoked command's name (`spike node`).
    pub command: String,
    /// Its settings, in the order its help lists them.
    pub settings: Vec<Setting>,
}

impl Loaded {
    /// The settings as a TOML document that `--config` reads back: each
    /// line says where its value came from; unset ones are comments.
    pub fn to_toml(&self) -> String {
        let mut text = format!(
            "# {}: the effective configuration (flags > SPIKE_… environment > --config file > defaults); secrets redacted\n",
            self.command
        );
        for setting in &self.settings {
            let line = match (&setting.value, &setting.source) {
                (Some(value), Some(source)) => {
                    let from = match source {
                        Source::Flag => "flag".to_owned(),
                        Source::Environment(name) => format!("environment {name}"),
                        Source::File => "file".to_owned(),
                        Source::Default => "default".to_owned(),
                    };
                    format!("{} = {value}  # {from}", setting.name)
                }
                _ => format!("# {} (unset)", setting.name),
            };
            let _ = writeln!(text, "{line}");
        }
        text
    }
}

/// The environment variable of the flag `--long`.
pub fn env_name(long: &str) -> String {
    format!("SPIKE_{}", long.replace('-', "_").to_uppercase())
}

/// Every command, each flag given its `SPIKE_…` environment variable
/// (unless it names one already).
pub fn command() -> clap::Command {
    with_environment(Cli::command())
}

fn with_environment(command: clap::Command) -> clap::Command {
    let names: Vec<String> = (command.get_subcommands())
        .map(|sub| sub.get_name().to_owned())
        .collect();
    let mut command = command.mut_args(|arg| {
        let id = arg.get_id().as_str();
        match (arg.get_long(), arg.get_env()) {
            (Some(long), None) if !NOT_SETTINGS.contains(&id) => {
                // Built once per process, for the life of the process.
                let name: &'static str = Box::leak(env_name(long).into_boxed_str());
                arg.env(name)
            }
            _ => arg,
        }
    });
    for name in names {
        command = command.mut_subcommand(name, with_environment);
    }
    command
}

/// Parses `args` (the program's name first) with every layer: the flags,
/// the environment, and the configuration file they name.
pub fn load(args: impl IntoIterator<Item = OsString>) -> Result<Loaded, ConfigError> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let root = command();
    let (leaf, path) = invoked(&root, &args);
    let mut from_file = BTreeSet::new();
    if let Some(file) = config_file(&args) {
        let table = read_table(&file)?;
        let extra = file_flags(&file, &table, leaf, &path, &args, &mut from_file)?;
        let at = (args.iter().position(|arg| arg == "--")).unwrap_or(args.len());
        args.splice(at..at, extra);
    }
    let matches = root.clone().try_get_matches_from(&args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let (leaf, leaf_matches) = leaf_of(&root, &matches);
    let settings = settings(leaf, leaf_matches, &from_file);
    Ok(Loaded {
        cli,
        command: path.join(" "),
        settings,
    })
}

/// The command `args` run (`spike sale create`), and its names.
fn invoked<'a>(root: &'a clap::Command, args: &[OsString]) -> (&'a clap::Command, Vec<String>) {
    let mut current = root;
    let mut path = vec![root.get_name().to_owned()];
    let mut tokens = args.iter().skip(1).filter_map(|arg| arg.to_str());
    while let Some(token) = tokens.next() {
        if token == "--" {
            break;
        }
        if !token.starts_with("--") && token.starts_with('-') {
            continue;
        }
        if let Some(flag) = token.strip_prefix("--") {
            let takes_value = !flag.contains('=')
                && (current.get_arguments().chain(root.get_arguments()))
                    .find(|arg| arg.get_long() == Some(flag))
                    .is_some_and(|arg| arg.get_action().takes_values());
            if takes_value {
                tokens.next();
            }
            continue;
        }
        match current.find_subcommand(token) {
            Some(sub) => {
                current = sub;
                path.push(sub.get_name().to_owned());
            }
            None if current.has_subcommands() => break,
            None => continue,
        }
    }
    (current, path)
}

/// The file `--config` (or `SPIKE_CONFIG`) names.
fn config_file(args: &[OsString]) -> Option<PathBuf> {
    let mut tokens = args.iter().skip(1);
    while let Some(token) = tokens.next() {
        if token == "--" {
            break;
        }
        if token == "--config" {
            return tokens.next().map(PathBuf::from);
        }
        if let Some(path) = token.to_str().and_then(|t| t.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|error| ConfigError::NotToml {
            path: path.to_owned(),
            message: error.message().to_owned(),
        })
}

/// The flags the file adds: each of its settings that neither the command
/// line nor the environment gives (their names go in `from_file`).
fn file_flags(
    path: &Path,
    table: &toml::Table,
    leaf: &clap::Command,
    command: &[String],
    args: &[OsString],
    from_file: &mut BTreeSet<String>,
) -> Result<Vec<OsString>, ConfigError> {
    let mut flags = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = (leaf.get_arguments())
            .find(|arg| arg.get_long() == Some(long.as_str()))
            .filter(|arg| !NOT_SETTINGS.contains(&arg.get_id().as_str()))
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
                command: command.join(" "),
                known: known_settings(leaf),
            })?;
        let on_command_line = (args.iter().filter_map(|a| a.to_str()))
            .any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
        let in_environment = (arg.get_env()).is_some_and(|name| std::env::var_os(name).is_some());
        if on_command_line || in_environment {
            continue;
        }
        let bad = || ConfigError::BadValue {
            path: path.to_owned(),
            key: key.clone(),
        };
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        from_file.insert(arg.get_id().as_str().to_owned());
        for value in values {
            let text = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Float(number) => number.to_string(),
                toml::Value::Boolean(flag) if !arg.get_action().takes_values() => {
                    if *flag {
                        flags.push(OsString::from(format!("--{long}")));
                    }
                    continue;
                }
                toml::Value::Boolean(flag) => flag.to_string(),
                _ => return Err(bad()),
            };
            flags.push(OsString::from(format!("--{long}={text}")));
        }
    }
    Ok(flags)
}

fn known_settings(command: &clap::Command) -> String {
    (command.get_arguments())
        .filter(|arg| !NOT_SETTINGS.contains(&arg.get_id().as_str()))
        .filter_map(|arg| arg.get_long())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The invoked command and its matches.
fn leaf_of<'a>(
    root: &'a clap::Command,
    matches: &'a ArgMatches,
) -> (&'a clap::Command, &'a ArgMatches) {
    let (mut command, mut matches) = (root, matches);
    while let Some((name, sub_matches)) = matches.subcommand() {
        match command.find_subcommand(name) {
            Some(sub) => (command, matches) = (sub, sub_matches),
            None => break,
        }
    }
    (command, matches)
}

/// The invoked command's settings, as they took effect.
fn settings(
    command: &clap::Command,
    matches: &ArgMatches,
    from_file: &BTreeSet<String>,
) -> Vec<Setting> {
    (command.get_arguments())
        .filter(|arg| !NOT_SETTINGS.contains(&arg.get_id().as_str()))
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let name = arg.get_long()?.to_owned();
            let raw: Vec<String> = (matches.get_raw(id).into_iter().flatten())
                .map(|value| value.to_string_lossy().into_owned())
                .collect();
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) if from_file.contains(id) => Some(Source::File),
                Some(ValueSource::CommandLine) => Some(Source::Flag),
                Some(ValueSource::EnvVariable) => (arg.get_env())
                    .map(|env| Source::Environment(env.to_string_lossy().into_owned())),
                Some(ValueSource::DefaultValue) => Some(Source::Default),
                _ => None,
            };
            let secret = arg.is_hide_env_values_set();
            let value = match raw.as_slice() {
                [] => None,
                _ if matches!(arg.get_action(), ArgAction::Append) => Some(format!(
                    "[{}]",
                    (raw.iter().map(|v| toml_value(v, secret)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                [one, ..] => Some(toml_value(one, secret)),
            };
            Some(Setting {
                name,
                value,
                source,
            })
        })
        .collect()
}

/// One raw value as TOML: a number or a boolean as such, anything else a
/// string; a secret (a URL that may carry a password) redacted.
fn toml_value(raw: &str, secret: bool) -> String {
    if secret {
        let shown = SecretUrl::new(raw).to_string();
        return toml::Value::String(shown).to_string();
    }
    if let Ok(number) = raw.parse::<i64>() {
        return number.to_string();
    }
    match raw {
        "true" | "false" => raw.to_owned(),
        _ => toml::Value::String(raw.to_owned()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn a_flag_names_its_environment_variable() {
        assert_eq!(env_name("rate-limit-per-ip"), "SPIKE_RATE_LIMIT_PER_IP");
        let root = command();
        let node = root.find_subcommand("node").unwrap();
        let env = |long: &str| {
            (node.get_arguments())
                .find(|arg| arg.get_long() == Some(long))
                .and_then(|arg| arg.get_env())
                .map(|name| name.to_string_lossy().into_owned())
        };
        assert_eq!(env("listen").as_deref(), Some("SPIKE_LISTEN"));
        assert_eq!(
            env("redis").as_deref(),
            Some("SPIKE_REDIS"),
            "kept as it was"
        );
        let config = root.get_arguments().find(|arg| arg.get_id() == "config");
        assert_eq!(
            config.and_then(|arg| arg.get_env()),
            Some(CONFIG_ENV.as_ref())
        );
    }

    #[test]
    fn the_invoked_command_is_found_past_flags_and_their_values() {
        let root = command();
        let (_, path) = invoked(
            &root,
            &args("spike --log-format json sale create --event x"),
        );
        assert_eq!(path, ["spike", "sale", "create"]);
        let (_, path) = invoked(&root, &args("spike node --listen 127.0.0.1:1 --event e"));
        assert_eq!(path, ["spike", "node"]);
        assert_eq!(
            config_file(&args("spike node --config a.toml")),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_file(&args("spike node --config=b.toml")),
            Some(PathBuf::from("b.toml"))
        );
    }

    #[test]
    fn values_print_as_toml_and_secrets_redacted() {
        assert_eq!(toml_value("4", false), "4");
        assert_eq!(toml_value("true", false), "true");
        assert_eq!(toml_value("127.0.0.1:3005", false), "\"127.0.0.1:3005\"");
        let shown = toml_value("redis://:hunter2@127.0.0.1:6379", true);
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
