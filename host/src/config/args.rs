//! Every option's flag and environment variable, as clap reads them. No option has a clap
//! default: a value clap did not see may still come from the configuration file or
//! LiteGraph's `litegraph.json`, so the defaults are applied in [`super`] after those.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tracing_subscriber::filter::Targets;

use crate::schedule::Schedule;

/// The options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// A configuration file (TOML) holding any of these options, `serve`'s, the schedule
    /// and the retention rules; a flag or an environment variable wins over it. Relative
    /// paths in it are relative to its directory. See `litegraph-backup config`.
    #[arg(long, global = true, env = "LITEGRAPH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// LiteGraph's own settings file (litegraph.json): its SQLite database filename,
    /// Storage.BackupsDirectory and LiteGraph.AdminBearerToken are taken from it, relative
    /// to its directory, below flags, environment and --config.
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_LITEGRAPH_CONFIG",
        value_name = "FILE"
    )]
    pub litegraph_config: Option<PathBuf>,

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

    /// The most memory the policy component may use, 1 to 4096 [default: 64].
    #[arg(long, global = true, env = "LITEGRAPH_GUEST_MEMORY_MIB", value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=MAX_GUEST_MEMORY_MIB))]
    pub guest_memory_mib: Option<u64>,

    /// The most time the policy component may compute in one operation, e.g. 5s (time
    /// spent copying or hashing files is the host's and does not count) [default: 5s].
    #[arg(long, global = true, env = "LITEGRAPH_GUEST_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub guest_timeout: Option<Duration>,

    /// --guest-timeout in milliseconds.
    #[arg(long, global = true, env = "LITEGRAPH_GUEST_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub guest_timeout_ms: Option<u64>,

    /// Where the compiled policy component is kept between runs, so that a command loads it
    /// instead of compiling it again (0.15-0.23 s) [default: $XDG_CACHE_HOME/litegraph-backup,
    /// else ~/.cache/litegraph-backup, made only when that variable's directory exists; with
    /// neither variable, none]. wasmtime manages its `wasmtime/` subdirectory (made private
    /// to this user); each entry is checked against the SHA-256 recorded beside it when
    /// written, the least recently used beyond 16 entries or 16 MiB are removed, and it is
    /// safe to delete. A cache that cannot be used or is damaged costs a compile, never a
    /// failure; one named here that cannot be used is said in a warning.
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_COMPILE_CACHE",
        value_name = "DIR"
    )]
    pub compile_cache: Option<PathBuf>,

    /// Compile the policy component in every run and keep nothing on disk.
    #[arg(long, global = true, env = "LITEGRAPH_NO_COMPILE_CACHE",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub no_compile_cache: bool,

    /// Print JSON instead of text: LiteGraph's BackupFile for the backup commands; `drill`,
    /// `status`, `prune` and the remote commands print theirs (see each command's help).
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
    /// "info,litegraph_backup=debug" [default: info for serve, error for other commands].
    #[arg(long, global = true, env = "RUST_LOG", value_name = "FILTER",
          value_parser = parse_log_filter)]
    pub log: Option<Targets>,

    /// How log lines are written: `text` for people, or `json` (one JSON object per line,
    /// for log shippers) [default: text].
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<LogFormat>,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// One remote target from flags or the environment, for scripts; the --config file's
/// `[[remote]]` tables hold any number. When given, it replaces the file's tables.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Remote target (one, named `default`; or [[remote]] in --config)")]
pub struct RemoteArgs {
    /// Offsite copies go to this target, named `default`: s3://BUCKET/PREFIX, file:///DIR
    /// or a directory. It replaces the --config file's [[remote]] tables. S3 credentials
    /// come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN,
    /// AWS_REGION, AWS_ENDPOINT_URL too).
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_BACKUP_REMOTE",
        value_name = "URL"
    )]
    pub remote: Option<String>,

    /// The S3 endpoint of --remote, for a server other than AWS: http://127.0.0.1:8014
    /// (plain HTTP is accepted to this machine only, unless --remote-allow-http).
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_BACKUP_REMOTE_ENDPOINT",
        value_name = "URL"
    )]
    pub remote_endpoint: Option<String>,

    /// Accept a plain-HTTP --remote-endpoint beyond this machine.
    #[arg(long, global = true, env = "LITEGRAPH_BACKUP_REMOTE_ALLOW_HTTP",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub remote_allow_http: bool,

    /// Encrypt what goes to --remote to this age recipient (age1..., from `age-keygen -y
    /// key.txt`); repeat for several. The environment variable takes a comma-separated list.
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_BACKUP_AGE_RECIPIENT",
        value_name = "AGE1...",
        value_delimiter = ','
    )]
    pub age_recipient: Vec<String>,

    /// The age identity file (from age-keygen) that decrypts what `pull`, `remote verify`
    /// and `recover` download from --remote.
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_BACKUP_AGE_IDENTITY",
        value_name = "FILE"
    )]
    pub age_identity: Option<PathBuf>,

    /// Compress what goes to --remote with zstd (level 3) before any encryption.
    #[arg(long, global = true, env = "LITEGRAPH_BACKUP_ZSTD",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub zstd: bool,
}

/// The largest --guest-memory-mib.
pub const MAX_GUEST_MEMORY_MIB: u64 = 4096;

/// `serve`'s own options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on [default: 127.0.0.1:8701] (port 0 picks a free one; the
    /// log says which). A non-loopback address with the default admin token is warned
    /// about: LiteGraph ships that token.
    #[arg(long, env = "LITEGRAPH_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// The bearer token that admits a client to the backup routes [default: litegraphadmin,
    /// LiteGraph's own, which everyone knows: set another beyond this machine].
    #[arg(
        long,
        env = "LITEGRAPH_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub admin_token: Option<String>,

    /// How long a client may take to send a request's headers, and then its body, e.g.
    /// 30s [default: 30s].
    #[arg(long, env = "LITEGRAPH_REQUEST_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,

    /// --request-timeout in milliseconds.
    #[arg(long, env = "LITEGRAPH_REQUEST_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: Option<u64>,

    /// The most client connections served at once [default: 1024]; more wait, or replace
    /// the connection idle the longest (lowered to fit the process's descriptor limit).
    #[arg(long, env = "LITEGRAPH_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: Option<usize>,

    /// Create an empty database (WAL mode) when --database names none. Without it, only
    /// the default database is created; a named one that is missing is refused (a typo
    /// would otherwise back up a new empty database).
    #[arg(long, env = "LITEGRAPH_CREATE_DATABASE",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub create_database: bool,

    /// Make a backup on a schedule: an interval (6h, 1d, 90s) or a 5-field cron expression
    /// in UTC ("0 3 * * *": minute hour day month weekday). Each run creates a backup
    /// under a default name, verifies it, then applies the --keep-* rules if any. Without
    /// a schedule, the rules are applied only when the API's prune is asked with none.
    #[arg(long, env = "LITEGRAPH_SCHEDULE", value_name = "WHEN",
          value_parser = parse_schedule)]
    pub schedule: Option<Schedule>,

    /// Drill a restore on a schedule: every DURATION (e.g. 1d), the newest backup is
    /// restored into a scratch database in a private temporary directory and checked
    /// (see `drill`); the outcome is kept with the backup and shown by `show` and `status`.
    #[arg(long, env = "LITEGRAPH_DRILL_EVERY", value_name = "DURATION",
          value_parser = parse_duration)]
    pub drill_every: Option<Duration>,

    /// Serve GET /metrics (Prometheus) on this address too, without the admin token
    /// (e.g. 127.0.0.1:9701). On the API's own address /metrics needs the token.
    #[arg(long, env = "LITEGRAPH_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Request this URL (GET) after each successful scheduled run: a dead man's switch
    /// such as healthchecks.io, which alerts when the pings stop.
    #[arg(long, env = "LITEGRAPH_HEARTBEAT_URL", value_name = "URL",
          value_parser = parse_url)]
    pub heartbeat_url: Option<String>,

    /// POST a JSON alert to this URL on each failed scheduled run or drill:
    /// {"Operation", "Error", "Time", "Host", "Backup"}.
    #[arg(long, env = "LITEGRAPH_ALERT_WEBHOOK", value_name = "URL",
          value_parser = parse_url)]
    pub alert_webhook: Option<String>,

    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// Retention rules, as `prune` and `serve --schedule` take them.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Retention rules (a backup is kept when any rule keeps it)")]
pub struct RetentionArgs {
    /// Keep the newest N backups.
    #[arg(long, env = "LITEGRAPH_KEEP_LAST", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,

    /// Keep the newest backup of each of the last N hours that have one (UTC).
    #[arg(long, env = "LITEGRAPH_KEEP_HOURLY", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_hourly: Option<u32>,

    /// Keep the newest backup of each of the last N days that have one (UTC).
    #[arg(long, env = "LITEGRAPH_KEEP_DAILY", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_daily: Option<u32>,

    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[arg(long, env = "LITEGRAPH_KEEP_WEEKLY", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_weekly: Option<u32>,

    /// Keep the newest backup of each of the last N months that have one.
    #[arg(long, env = "LITEGRAPH_KEEP_MONTHLY", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_monthly: Option<u32>,

    /// Keep the newest backup of each of the last N years that have one.
    #[arg(long, env = "LITEGRAPH_KEEP_YEARLY", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_yearly: Option<u32>,

    /// Keep every backup made within this long before the newest one, e.g. 2d, 36h.
    #[arg(long, env = "LITEGRAPH_KEEP_WITHIN", value_name = "DURATION",
          value_parser = parse_keep_within)]
    pub keep_within: Option<Duration>,

    /// Apply the rules to backups a person named too. Without it only backups whose names
    /// the tool chose (litegraph-backup-*, pre-restore-*) are ever removed.
    #[arg(long, env = "LITEGRAPH_INCLUDE_NAMED",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub include_named: bool,
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

/// A duration of at least a second: the policy counts retention in whole seconds.
pub fn parse_keep_within(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (write a duration with its unit, e.g. 2d or 36h)"))?;
    if duration < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(duration)
}

/// A log filter in RUST_LOG's syntax (levels and targets; no regular expressions).
pub fn parse_log_filter(text: &str) -> Result<Targets, String> {
    text.parse::<Targets>()
        .map_err(|e| format!("{e} (e.g. info, or info,litegraph_backup=debug)"))
}

/// An http:// or https:// URL with a host.
pub fn parse_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("must be an http:// or https:// URL")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("must name a host, e.g. https://hc-ping.com/UUID".to_owned());
    }
    Ok(text.to_owned())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be `text` or `json`".to_owned()),
        }
    }
}

pub fn parse_schedule(text: &str) -> Result<Schedule, String> {
    text.parse::<Schedule>().map_err(|e| e.to_string())
}
