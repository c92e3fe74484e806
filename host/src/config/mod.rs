//! Settings, in one place: every option's flag and environment variable ([`args`]), the
//! configuration file ([`file`]), LiteGraph's `litegraph.json` ([`litegraph`]), and the one
//! merge of them that the edges receive. Each value is taken from the first of: a flag, an
//! environment variable, the `--config` file, `litegraph.json`, the default; and where it
//! came from is kept for `litegraph-backup config`. No other module reads an environment
//! variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ArgMatches;
use tracing_subscriber::filter::Targets;

use crate::remote::TargetConfig;
use crate::runtime::CompileCache;
use crate::schedule::Schedule;
use crate::snapshot::{DEFAULT_BUSY_TIMEOUT, LiveDatabase};
use crate::{Limits, Retention};

mod args;
mod file;
mod layers;
mod litegraph;
mod remote;

pub use args::{
    GlobalArgs, LogFormat, RemoteArgs, RetentionArgs, ServeArgs, parse_duration, parse_keep_within,
    parse_log_filter, parse_schedule,
};
pub use file::{FileRetention, FileSettings};
pub use litegraph::LiteGraphSettings;
pub use remote::{
    DEFAULT_ZSTD_LEVEL, Environment, FLAG_TARGET, ProcessEnvironment, RemoteDraft, RemoteUrl,
    parse_url,
};

use layers::{Files, Layers, Report, show_duration, show_optional, show_optional_path, show_path};

/// The database LiteGraph uses when none is named: relative to the working directory.
pub const DEFAULT_DATABASE: &str = "litegraph.db";
/// The backup directory when none is named: relative to the working directory.
pub const DEFAULT_BACKUPS: &str = "./backups/";
/// The token LiteGraph ships with: anyone who has read its documentation knows it.
pub const DEFAULT_ADMIN_TOKEN: &str = "litegraphadmin";
/// `serve`'s address when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8701";
/// The log filter of `serve` when none is given.
const DEFAULT_LOG: &str = "info";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    /// The environment variable named.
    Env(String),
    /// The `--config` file.
    File(PathBuf),
    /// LiteGraph's `litegraph.json`.
    LiteGraph(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => write!(f, "flag"),
            Source::Env(variable) => write!(f, "env {variable}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::LiteGraph(path) => write!(f, "litegraph.json {}", path.display()),
            Source::Default => write!(f, "default"),
        }
    }
}

/// One line of the effective configuration: the file's key, the value as text (a secret
/// redacted) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub source: Source,
}

/// A path setting and whether the operator named it (anywhere) or it is the default.
#[derive(Debug, Clone)]
pub struct Location {
    pub path: PathBuf,
    pub named: bool,
}

/// The merged settings of a command.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: Location,
    pub backups: Location,
    pub busy_timeout: Duration,
    pub limits: Limits,
    pub policy_component: Option<PathBuf>,
    /// Where the compiled policy is kept between runs.
    pub compile_cache: CompileCache,
    pub json: bool,
    pub quiet: bool,
    pub log: Logging,
    /// The remote targets, as configured (not yet opened: `Targets::open` checks them).
    pub remotes: Vec<TargetConfig>,
    /// What the operator should hear about the settings (a secret in a file others can
    /// read), said once logging is set up.
    pub warnings: Vec<String>,
    /// Every value above, with where it came from (secrets as `<set>`).
    pub report: Vec<Entry>,
    /// The files read, for the settings of `serve` and `prune`.
    files: Files,
}

/// What the log shows and how.
#[derive(Debug, Clone)]
pub struct Logging {
    pub filter: Targets,
    pub colour: bool,
    pub format: LogFormat,
}

/// `serve`'s merged settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub admin_token: String,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub create_database: bool,
    /// When to make a backup on its own; `None`: only when asked.
    pub schedule: Option<Schedule>,
    /// The rules applied after each scheduled backup, and by the API's prune when its
    /// request names none (no rule: nothing is removed).
    pub retention: Retention,
    /// How often the newest backup is drilled; `None`: only when asked.
    pub drill_every: Option<Duration>,
    /// A second address serving `/metrics` without the admin token.
    pub metrics_listen: Option<String>,
    /// Requested after each successful scheduled run.
    pub heartbeat_url: Option<String>,
    /// Receives a JSON POST on each failed scheduled run or drill.
    pub alert_webhook: Option<String>,
    /// Every value above, with where it came from (the token redacted).
    pub report: Vec<Entry>,
}

/// A setting refused as given; the text says which and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

impl Config {
    /// Merges the global options; `matches` are the whole command line's. Reads the
    /// configuration file and LiteGraph's settings file when they are given.
    pub fn new(matches: &ArgMatches) -> Result<Config, ConfigError> {
        Config::new_in(matches, &ProcessEnvironment)
    }

    /// [`Config::new`], with the `AWS_*` variables and the cache's `XDG_CACHE_HOME` and
    /// `HOME` read from `environment`.
    pub fn new_in(
        matches: &ArgMatches,
        environment: &dyn Environment,
    ) -> Result<Config, ConfigError> {
        let mut report = Report::default();
        let files = Files::default();
        let layers = Layers {
            matches,
            files: &files,
        };
        let (config_file, _) = report.take(
            "config",
            layers.given::<PathBuf>("config").map(|(p, s)| (Some(p), s)),
            || None,
            show_optional_path,
        );
        let mut files = Files {
            config: config_file.as_deref().map(FileSettings::load).transpose()?,
            litegraph: None,
        };
        let layers = Layers {
            matches,
            files: &files,
        };
        let (litegraph_file, _) = report.take(
            "litegraph_config",
            layers
                .given::<PathBuf>("litegraph_config")
                .or_else(|| layers.file(|f| f.litegraph_config.clone()))
                .map(|(p, s)| (Some(p), s)),
            || None,
            show_optional_path,
        );
        files.litegraph = litegraph_file
            .as_deref()
            .map(LiteGraphSettings::load)
            .transpose()?;
        let layers = Layers {
            matches,
            files: &files,
        };
        let mut config = Config::merge(&layers, environment, report)?;
        let mut report = Report::default();
        config.remotes = remote::targets(&layers, environment, &mut report)?;
        config.report.extend(report.0);
        config.warnings.extend(
            files
                .config
                .as_ref()
                .and_then(|file| remote::readable_secret_warning(&file.path, &file.remotes)),
        );
        Ok(config)
    }

    fn merge(
        layers: &Layers,
        environment: &dyn Environment,
        mut report: Report,
    ) -> Result<Config, ConfigError> {
        let database = database(layers, &mut report)?;
        let backups = report.take(
            "backups",
            layers
                .given::<PathBuf>("backups")
                .or_else(|| layers.file(|f| f.backups.clone()))
                .or_else(|| layers.litegraph(|l| l.backups.clone())),
            || PathBuf::from(DEFAULT_BACKUPS),
            |p: &PathBuf| show_path(p),
        );
        let (busy_timeout, _) = report.take(
            "busy_timeout",
            layers
                .timeout("busy_timeout", "busy_timeout_ms")?
                .or_else(|| layers.file(|f| f.busy_timeout)),
            || DEFAULT_BUSY_TIMEOUT,
            show_duration,
        );
        let (policy_component, _) = report.take(
            "policy_component",
            layers
                .given::<PathBuf>("policy_component")
                .or_else(|| layers.file(|f| f.policy_component.clone()))
                .map(|(p, s)| (Some(p), s)),
            || None,
            |p: &Option<PathBuf>| p.as_deref().map_or("(built in)".to_owned(), show_path),
        );
        let (guest_memory_mib, _) = report.take(
            "guest_memory_mib",
            layers
                .given::<u64>("guest_memory_mib")
                .or_else(|| layers.file(|f| f.guest_memory_mib)),
            || (Limits::default().memory_bytes >> 20) as u64,
            ToString::to_string,
        );
        let (guest_time, _) = report.take(
            "guest_timeout",
            layers
                .timeout("guest_timeout", "guest_timeout_ms")?
                .or_else(|| layers.file(|f| f.guest_timeout)),
            || Limits::default().guest_time,
            show_duration,
        );
        let (compile_cache, _) = report.take(
            "compile_cache",
            compile_cache_given(layers)?.or_else(|| layers.file(|f| f.compile_cache.clone())),
            || default_compile_cache(environment),
            |cache: &CompileCache| cache.directory().map_or("(off)".to_owned(), show_path),
        );
        let mut flag = |key: &'static str, pick: fn(&FileSettings) -> Option<bool>| {
            report
                .take(
                    key,
                    layers.given::<bool>(key).or_else(|| layers.file(pick)),
                    || false,
                    ToString::to_string,
                )
                .0
        };
        let json = flag("json", |f| f.json);
        let quiet = flag("quiet", |f| f.quiet);
        let no_color = flag("no_color", |f| f.no_color);
        // A server's log is its output; a command prints its answer and one error line, and
        // logs only what went wrong inside (the policy's backtrace) when RUST_LOG asks.
        // `config` shows what `serve` would run with.
        let default_log = match (layers.matches.subcommand_name(), quiet) {
            (Some("serve" | "config"), false) => DEFAULT_LOG,
            (Some("serve" | "config"), true) => "warn",
            _ => "error",
        };
        let (filter, _) = report.take(
            "log",
            layers
                .given::<Targets>("log")
                .or_else(|| layers.file(|f| f.log.clone())),
            || parse_log_filter(default_log).expect("a level parses"),
            ToString::to_string,
        );
        let (log_format, _) = report.take(
            "log_format",
            layers
                .given::<LogFormat>("log_format")
                .or_else(|| layers.file(|f| f.log_format)),
            LogFormat::default,
            ToString::to_string,
        );
        Ok(Config {
            database,
            backups: location(backups),
            busy_timeout,
            limits: Limits {
                memory_bytes: usize::try_from(guest_memory_mib << 20).unwrap_or(usize::MAX),
                guest_time,
            },
            policy_component,
            compile_cache,
            json,
            quiet,
            log: Logging {
                filter,
                colour: !no_color,
                format: log_format,
            },
            remotes: Vec::new(),
            warnings: Vec::new(),
            report: report.0,
            files: layers.files.clone(),
        })
    }

    pub fn live_database(&self) -> LiveDatabase {
        LiveDatabase::new(&self.database.path, self.busy_timeout)
    }

    /// The retention rules of `prune` (or `serve`): `matches` are that command's.
    pub fn retention(&self, matches: &ArgMatches) -> (Retention, Vec<Entry>) {
        let mut report = Report::default();
        let layers = Layers {
            matches,
            files: &self.files,
        };
        let retention = retention(&layers, &mut report);
        (retention, report.0)
    }
}

fn location((path, source): (PathBuf, Source)) -> Location {
    Location {
        path,
        named: source != Source::Default,
    }
}

/// The database: LiteGraph's, when its settings name one and nothing above them does; an
/// error when they say it has no file (another provider, in memory) and nothing names one.
fn database(layers: &Layers, report: &mut Report) -> Result<Location, ConfigError> {
    let above = layers
        .given::<PathBuf>("database")
        .or_else(|| layers.file(|f| f.database.clone()));
    let litegraph = match (&above, &layers.files.litegraph) {
        (None, Some(settings)) => match &settings.database {
            Ok(database) => database
                .clone()
                .map(|path| (path, Source::LiteGraph(settings.path.clone()))),
            Err(why) => {
                return Err(ConfigError(format!(
                    "{}: {why}; give --database",
                    settings.path.display()
                )));
            }
        },
        _ => None,
    };
    let picked = report.take(
        "database",
        above.or(litegraph),
        || PathBuf::from(DEFAULT_DATABASE),
        |p: &PathBuf| show_path(p),
    );
    Ok(location(picked))
}

/// `--compile-cache DIR` or `--no-compile-cache`, from a flag or the environment: a flag
/// wins over the environment whichever it says; both on the same level are refused.
fn compile_cache_given(layers: &Layers) -> Result<Option<(CompileCache, Source)>, ConfigError> {
    let directory = layers
        .given::<PathBuf>("compile_cache")
        .map(|(path, source)| (CompileCache::In(path), source));
    let off = layers
        .given::<bool>("no_compile_cache")
        .filter(|(off, _)| *off)
        .map(|(_, source)| (CompileCache::Off, source));
    match (directory, off) {
        (Some(directory), Some(off)) => match (&directory.1, &off.1) {
            (Source::Flag, Source::Flag) => Err(ConfigError(
                "give --compile-cache or --no-compile-cache, not both".to_owned(),
            )),
            (Source::Env(a), Source::Env(b)) => {
                Err(ConfigError(format!("set {a} or {b}, not both")))
            }
            (Source::Flag, _) => Ok(Some(directory)),
            _ => Ok(Some(off)),
        },
        (directory, off) => Ok(directory.or(off)),
    }
}

/// The user's cache directory, as the XDG Base Directory specification places it:
/// `$XDG_CACHE_HOME/litegraph-backup` when that variable is an absolute path, else
/// `~/.cache/litegraph-backup` (also on macOS: the tool serves Linux machines first, and one
/// rule is easier to find). Without either variable (a service with no home), nothing is
/// kept; nor when the directory the variable names does not exist (see
/// [`CompileCache::Default`]).
fn default_compile_cache(environment: &dyn Environment) -> CompileCache {
    let absolute = |name: &str| {
        environment
            .var(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .map(|xdg| (xdg.join("litegraph-backup"), xdg))
        .or_else(|| absolute("HOME").map(|home| (home.join(".cache/litegraph-backup"), home)))
        .map_or(CompileCache::Off, |(directory, under)| {
            CompileCache::Default { under, directory }
        })
}

/// The retention rules, each from the first layer that sets it: rules from different
/// layers add up (a union, as the rules themselves do).
fn retention(layers: &Layers, report: &mut Report) -> Retention {
    let mut count = |key: &'static str, id: &str, pick: fn(&FileRetention) -> Option<u32>| {
        report
            .take(
                key,
                layers
                    .given::<u32>(id)
                    .map(|(n, s)| (Some(n), s))
                    .or_else(|| {
                        layers
                            .file(|f| pick(&f.retention))
                            .map(|(n, s)| (Some(n), s))
                    }),
                || None,
                show_optional,
            )
            .0
    };
    let keep_last = count("retention.keep_last", "keep_last", |r| r.keep_last);
    let keep_hourly = count("retention.keep_hourly", "keep_hourly", |r| r.keep_hourly);
    let keep_daily = count("retention.keep_daily", "keep_daily", |r| r.keep_daily);
    let keep_weekly = count("retention.keep_weekly", "keep_weekly", |r| r.keep_weekly);
    let keep_monthly = count("retention.keep_monthly", "keep_monthly", |r| r.keep_monthly);
    let keep_yearly = count("retention.keep_yearly", "keep_yearly", |r| r.keep_yearly);
    let (keep_within, _) = report.take(
        "retention.keep_within",
        layers
            .given::<Duration>("keep_within")
            .or_else(|| layers.file(|f| f.retention.keep_within))
            .map(|(d, s)| (Some(d), s)),
        || None,
        |d: &Option<Duration>| show_optional(&d.map(humantime::format_duration)),
    );
    let (include_named, _) = report.take(
        "retention.include_named",
        layers
            .given::<bool>("include_named")
            .or_else(|| layers.file(|f| f.retention.include_named)),
        || false,
        ToString::to_string,
    );
    Retention {
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        keep_within,
        include_named,
    }
}

impl ServeConfig {
    /// Merges `serve`'s options; `matches` are the `serve` subcommand's (or `config`'s).
    /// Retention rules without a schedule are kept: the API's prune applies them on
    /// request.
    pub fn new(matches: &ArgMatches, config: &Config) -> Result<ServeConfig, ConfigError> {
        let layers = Layers {
            matches,
            files: &config.files,
        };
        let mut report = Report::default();
        let (listen, _) = report.take(
            "serve.listen",
            layers
                .given::<String>("listen")
                .or_else(|| layers.file(|f| f.listen.clone())),
            || DEFAULT_LISTEN.to_owned(),
            Clone::clone,
        );
        let (admin_token, _) = report.take(
            "serve.admin_token",
            layers
                .given::<String>("admin_token")
                .or_else(|| layers.file(|f| f.admin_token.clone()))
                .or_else(|| layers.litegraph(|l| l.admin_token.clone())),
            || DEFAULT_ADMIN_TOKEN.to_owned(),
            |token: &String| redacted(token),
        );
        let (request_timeout, _) = report.take(
            "serve.request_timeout",
            layers
                .timeout("request_timeout", "request_timeout_ms")?
                .or_else(|| layers.file(|f| f.request_timeout)),
            || crate::http::DEFAULT_REQUEST_TIMEOUT,
            show_duration,
        );
        let (max_connections, _) = report.take(
            "serve.max_connections",
            layers
                .given::<usize>("max_connections")
                .or_else(|| layers.file(|f| f.max_connections)),
            || crate::http::DEFAULT_MAX_CONNECTIONS,
            ToString::to_string,
        );
        let (create_database, _) = report.take(
            "serve.create_database",
            layers
                .given::<bool>("create_database")
                .or_else(|| layers.file(|f| f.create_database)),
            || false,
            ToString::to_string,
        );
        let (schedule, _) = report.take(
            "serve.schedule",
            layers
                .given::<Schedule>("schedule")
                .or_else(|| layers.file(|f| f.schedule.clone()))
                .map(|(s, source)| (Some(s), source)),
            || None,
            show_optional,
        );
        let (drill_every, _) = report.take(
            "serve.drill_every",
            layers
                .given::<Duration>("drill_every")
                .or_else(|| layers.file(|f| f.drill_every))
                .map(|(d, source)| (Some(d), source)),
            || None,
            |d: &Option<Duration>| d.map_or("(none)".to_owned(), |d| show_duration(&d)),
        );
        let (metrics_listen, _) = report.take(
            "serve.metrics_listen",
            layers
                .given::<String>("metrics_listen")
                .or_else(|| layers.file(|f| f.metrics_listen.clone()))
                .map(|(a, source)| (Some(a), source)),
            || None,
            show_optional,
        );
        let (heartbeat_url, _) = report.take(
            "serve.heartbeat_url",
            layers
                .given::<String>("heartbeat_url")
                .or_else(|| layers.file(|f| f.heartbeat_url.clone()))
                .map(|(u, source)| (Some(u), source)),
            || None,
            show_url,
        );
        let (alert_webhook, _) = report.take(
            "serve.alert_webhook",
            layers
                .given::<String>("alert_webhook")
                .or_else(|| layers.file(|f| f.alert_webhook.clone()))
                .map(|(u, source)| (Some(u), source)),
            || None,
            show_url,
        );
        let retention = retention(&layers, &mut report);
        Ok(ServeConfig {
            drill_every,
            metrics_listen,
            heartbeat_url,
            alert_webhook,
            listen,
            admin_token,
            request_timeout,
            max_connections,
            create_database,
            schedule,
            retention,
            report: report.0,
        })
    }

    /// Whether a server on `bound` with this token is open to anyone who knows LiteGraph's
    /// documentation.
    pub fn default_token_exposed(&self, bound: SocketAddr) -> bool {
        self.admin_token == DEFAULT_ADMIN_TOKEN && !bound.ip().is_loopback()
    }

    /// What `serve` runs on its own.
    pub fn daemon_settings(&self) -> crate::daemon::DaemonSettings {
        crate::daemon::DaemonSettings {
            schedule: self.schedule.clone(),
            retention: self.retention.clone(),
            drill_every: self.drill_every,
            heartbeat_url: self.heartbeat_url.clone(),
            alert_webhook: self.alert_webhook.clone(),
        }
    }

    pub fn serve_options(&self) -> crate::http::ServeOptions {
        crate::http::ServeOptions {
            header_timeout: self.request_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// A URL as the configuration shows it: its scheme and host, without credentials, path or
/// query (a heartbeat's path is its secret, and `user:password@` is one).
fn show_url(url: &Option<String>) -> String {
    let Some(url) = url else {
        return "(none)".to_owned();
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let hidden = if authority.len() == host.len() {
        ""
    } else {
        "<redacted>@"
    };
    if authority.len() == rest.len() {
        format!("{scheme}://{hidden}{host}")
    } else {
        format!("{scheme}://{hidden}{host}/<redacted>")
    }
}

/// A secret as the configuration shows it: never its text.
fn redacted(token: &str) -> String {
    if token == DEFAULT_ADMIN_TOKEN {
        "<redacted: LiteGraph's well-known default>".to_owned()
    } else {
        "<redacted>".to_owned()
    }
}

#[cfg(test)]
mod tests;
