//! Settings, in one place: every option's flag, environment variable and default (clap
//! applies flag > environment > default), and the merged values the edges receive. No other
//! module reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use tracing_subscriber::filter::Targets;

use crate::Limits;
use crate::snapshot::{DEFAULT_BUSY_TIMEOUT, LiveDatabase};

/// The database LiteGraph uses when none is named: relative to the working directory.
pub const DEFAULT_DATABASE: &str = "litegraph.db";
/// The backup directory when none is named: relative to the working directory.
pub const DEFAULT_BACKUPS: &str = "./backups/";
/// The token LiteGraph ships with: anyone who has read its documentation knows it.
pub const DEFAULT_ADMIN_TOKEN: &str = "litegraphadmin";
/// The log filter when `RUST_LOG` is not set.
const DEFAULT_LOG: &str = "info";

/// The options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The live LiteGraph database (a SQLite file) [default: litegraph.db]. `create` and
    /// the safety copy of `restore` read it; `restore` writes a backup's content into it;
    /// only `serve` creates it, and only when it is the default or --create-database is
    /// given. No other command ever creates it.
    #[arg(long, global = true, env = "LITEGRAPH_DB", value_name = "PATH")]
    pub database: Option<PathBuf>,

    /// The directory that holds the backups [default: ./backups/, relative to the working
    /// directory]. `create` and `serve` make it when it is missing; before the first backup,
    /// `list` and `exists` treat a missing default directory as empty.
    #[arg(long, global = true, env = "LITEGRAPH_BACKUPS", value_name = "DIR")]
    pub backups: Option<PathBuf>,

    /// How long a create or restore waits for a lock on the database (a writer, or another
    /// create or restore) to be released, e.g. 10s, 500ms [default: 10s].
    #[arg(long, global = true, env = "LITEGRAPH_BUSY_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub busy_timeout: Option<Duration>,

    /// --busy-timeout in milliseconds.
    #[arg(long, global = true, env = "LITEGRAPH_BUSY_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub busy_timeout_ms: Option<u64>,

    /// Run this WebAssembly component as the policy instead of the built-in one; it must
    /// implement the `litegraph:backup/backup-service` world (see wit/).
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_POLICY_COMPONENT",
        value_name = "FILE"
    )]
    pub policy_component: Option<PathBuf>,

    /// The most memory the policy component may use.
    #[arg(long, global = true, env = "LITEGRAPH_GUEST_MEMORY_MIB", value_name = "MIB",
          default_value_t = (Limits::default().memory_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub guest_memory_mib: u64,

    /// The most time the policy component may compute in one operation, e.g. 5s (time
    /// spent copying or hashing files is the host's and does not count) [default: 5s].
    #[arg(long, global = true, env = "LITEGRAPH_GUEST_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub guest_timeout: Option<Duration>,

    /// --guest-timeout in milliseconds.
    #[arg(long, global = true, env = "LITEGRAPH_GUEST_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub guest_timeout_ms: Option<u64>,

    /// Print LiteGraph's BackupFile JSON instead of text.
    #[arg(long, global = true, env = "LITEGRAPH_JSON",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub json: bool,

    /// Print only what a command answers (lists, JSON, failures), not its confirmations;
    /// errors still go to stderr. `serve` then logs warnings and errors only.
    #[arg(short, long, global = true, env = "LITEGRAPH_QUIET",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub quiet: bool,

    /// No colour in the log (also when NO_COLOR is set, or when stderr is not a terminal).
    #[arg(long, global = true, env = "NO_COLOR",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub no_color: bool,

    /// Which log lines to write, as RUST_LOG: a level, or targets with levels, e.g.
    /// "info,litegraph_backup=debug" [default: info].
    #[arg(long, global = true, env = "RUST_LOG", value_name = "FILTER",
          value_parser = parse_log_filter)]
    pub log: Option<Targets>,
}

/// `serve`'s own options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free one; the log says which). A
    /// non-loopback address with the default admin token is warned about: LiteGraph ships
    /// that token.
    #[arg(
        long,
        env = "LITEGRAPH_LISTEN",
        default_value = "127.0.0.1:8701",
        value_name = "ADDR"
    )]
    pub listen: String,

    /// The bearer token that admits a client to the backup routes [default: litegraphadmin,
    /// LiteGraph's own, which everyone knows: set another beyond this machine].
    #[arg(
        long,
        env = "LITEGRAPH_ADMIN_TOKEN",
        default_value = DEFAULT_ADMIN_TOKEN,
        hide_env_values = true,
        hide_default_value = true,
        value_name = "TOKEN",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub admin_token: String,

    /// How long a client may take to send a request's headers, and then its body, e.g.
    /// 30s [default: 30s].
    #[arg(long, env = "LITEGRAPH_REQUEST_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,

    /// --request-timeout in milliseconds.
    #[arg(long, env = "LITEGRAPH_REQUEST_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: Option<u64>,

    /// The most client connections served at once; more wait, or replace the connection
    /// idle the longest (lowered to fit the process's descriptor limit).
    #[arg(long, env = "LITEGRAPH_MAX_CONNECTIONS", value_name = "N",
          default_value_t = crate::http::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,

    /// Create an empty database (WAL mode) when --database names none. Without it, only
    /// the default database is created; a named one that is missing is refused (a typo
    /// would otherwise back up a new empty database).
    #[arg(long, env = "LITEGRAPH_CREATE_DATABASE",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub create_database: bool,
}

/// A path setting and whether the operator named it (by flag or environment) or it is the
/// default.
#[derive(Debug, Clone)]
pub struct Location {
    pub path: PathBuf,
    pub named: bool,
}

impl Location {
    fn of(given: Option<&PathBuf>, default: &str) -> Location {
        Location {
            path: given.cloned().unwrap_or_else(|| PathBuf::from(default)),
            named: given.is_some(),
        }
    }
}

/// The merged settings of a command.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: Location,
    pub backups: Location,
    pub busy_timeout: Duration,
    pub limits: Limits,
    pub policy_component: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    pub log: Logging,
}

/// What the log shows and how.
#[derive(Debug, Clone)]
pub struct Logging {
    pub filter: Targets,
    pub colour: bool,
}

/// `serve`'s merged settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub admin_token: String,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub create_database: bool,
}

/// A setting refused as given (two forms of one timeout on the same level).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    /// Merges the global options; `matches` tells where each value came from.
    pub fn new(args: &GlobalArgs, matches: &ArgMatches) -> Result<Config, ConfigError> {
        let busy_timeout = one_timeout(matches, "busy_timeout", "busy_timeout_ms")?
            .unwrap_or(DEFAULT_BUSY_TIMEOUT);
        let guest_time = one_timeout(matches, "guest_timeout", "guest_timeout_ms")?
            .unwrap_or(Limits::default().guest_time);
        // A server's log is its output; a command prints its answer and one error line, and
        // logs only what went wrong inside (the policy's backtrace) when RUST_LOG asks.
        let default_log = match (matches.subcommand_name(), args.quiet) {
            (Some("serve"), false) => DEFAULT_LOG,
            (Some("serve"), true) => "warn",
            _ => "error",
        };
        Ok(Config {
            database: Location::of(args.database.as_ref(), DEFAULT_DATABASE),
            backups: Location::of(args.backups.as_ref(), DEFAULT_BACKUPS),
            busy_timeout,
            limits: Limits {
                memory_bytes: usize::try_from(args.guest_memory_mib << 20).unwrap_or(usize::MAX),
                guest_time,
            },
            policy_component: args.policy_component.clone(),
            json: args.json,
            quiet: args.quiet,
            log: Logging {
                filter: args
                    .log
                    .clone()
                    .unwrap_or_else(|| parse_log_filter(default_log).expect("a level parses")),
                colour: !args.no_color,
            },
        })
    }

    pub fn live_database(&self) -> LiveDatabase {
        LiveDatabase::new(&self.database.path, self.busy_timeout)
    }
}

impl ServeConfig {
    /// Merges `serve`'s options; `matches` are the `serve` subcommand's.
    pub fn new(args: &ServeArgs, matches: &ArgMatches) -> Result<ServeConfig, ConfigError> {
        let request_timeout = one_timeout(matches, "request_timeout", "request_timeout_ms")?
            .unwrap_or(crate::http::DEFAULT_REQUEST_TIMEOUT);
        Ok(ServeConfig {
            listen: args.listen.clone(),
            admin_token: args.admin_token.clone(),
            request_timeout,
            max_connections: args.max_connections,
            create_database: args.create_database,
        })
    }

    /// Whether a server on `bound` with this token is open to anyone who knows LiteGraph's
    /// documentation.
    pub fn default_token_exposed(&self, bound: SocketAddr) -> bool {
        self.admin_token == DEFAULT_ADMIN_TOKEN && !bound.ip().is_loopback()
    }

    pub fn serve_options(&self) -> crate::http::ServeOptions {
        crate::http::ServeOptions {
            header_timeout: self.request_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// A timeout given as a duration (`--busy-timeout 10s`) or in milliseconds
/// (`--busy-timeout-ms 10000`): a flag wins over the environment whichever its form; two
/// forms on the same level are refused.
fn one_timeout(
    matches: &ArgMatches,
    duration_id: &str,
    millis_id: &str,
) -> Result<Option<Duration>, ConfigError> {
    let rank = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => 2,
        Some(ValueSource::EnvVariable) => 1,
        _ => 0,
    };
    let duration = || matches.get_one::<Duration>(duration_id).copied();
    let millis = || {
        matches
            .get_one::<u64>(millis_id)
            .map(|ms| Duration::from_millis(*ms))
    };
    let flag = |id: &str| format!("--{}", id.replace('_', "-"));
    match (rank(duration_id), rank(millis_id)) {
        (0, 0) => Ok(None),
        (a, b) if a == b => Err(ConfigError(format!(
            "give {} or {}, not both",
            flag(duration_id),
            flag(millis_id)
        ))),
        (a, b) if a > b => Ok(duration()),
        _ => Ok(millis()),
    }
}

/// A duration with its unit: `10s`, `500ms`, `1m 30s`; more than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (write a duration with its unit, e.g. 10s or 500ms)"))?;
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

/// A log filter in RUST_LOG's syntax (levels and targets; no regular expressions).
pub fn parse_log_filter(text: &str) -> Result<Targets, String> {
    text.parse::<Targets>()
        .map_err(|e| format!("{e} (e.g. info, or info,litegraph_backup=debug)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_their_unit() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("10").is_err(), "a unit is required");
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn log_filters_parse_like_rust_log() {
        assert!(parse_log_filter("info,litegraph_backup=debug").is_ok());
        assert!(parse_log_filter("warn").is_ok());
        assert!(parse_log_filter("info,=[").is_err());
    }
}
