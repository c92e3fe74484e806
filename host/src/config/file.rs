//! The configuration file (`--config FILE`, TOML): the same options as the flags, named as
//! the flags are with `_` for `-`, `serve`'s under `[serve]`, the retention rules under
//! `[retention]`. An unknown key or a bad value is an error naming the file, the line and
//! the key: a typo must never be a setting silently ignored.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use tracing_subscriber::filter::Targets;

use super::ConfigError;
use super::args::{
    LogFormat, MAX_GUEST_MEMORY_MIB, parse_duration, parse_keep_within, parse_log_filter,
    parse_schedule, parse_url,
};
use super::remote::{RawRemote, RemoteChecker, RemoteDraft};
use crate::runtime::CompileCache;
use crate::schedule::Schedule;

/// The file as written: strings are checked after parsing, where their spans are known.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    database: Option<Spanned<String>>,
    backups: Option<Spanned<String>>,
    busy_timeout: Option<Spanned<String>>,
    policy_component: Option<Spanned<String>>,
    guest_memory_mib: Option<Spanned<u64>>,
    guest_timeout: Option<Spanned<String>>,
    compile_cache: Option<Spanned<String>>,
    no_compile_cache: Option<Spanned<bool>>,
    json: Option<bool>,
    quiet: Option<bool>,
    no_color: Option<bool>,
    log: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    litegraph_config: Option<Spanned<String>>,
    #[serde(default)]
    serve: RawServe,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    remote: Vec<Spanned<RawRemote>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    listen: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<u64>>,
    create_database: Option<bool>,
    schedule: Option<Spanned<String>>,
    drill_every: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    heartbeat_url: Option<Spanned<String>>,
    alert_webhook: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_last: Option<Spanned<u32>>,
    keep_hourly: Option<Spanned<u32>>,
    keep_daily: Option<Spanned<u32>>,
    keep_weekly: Option<Spanned<u32>>,
    keep_monthly: Option<Spanned<u32>>,
    keep_yearly: Option<Spanned<u32>>,
    keep_within: Option<Spanned<String>>,
    include_named: Option<bool>,
}

/// The settings a configuration file holds, checked; `None` where it says nothing.
#[derive(Debug, Clone, Default)]
pub struct FileSettings {
    /// The file, as it was named.
    pub path: PathBuf,
    pub database: Option<PathBuf>,
    pub backups: Option<PathBuf>,
    pub busy_timeout: Option<Duration>,
    pub policy_component: Option<PathBuf>,
    pub guest_memory_mib: Option<u64>,
    pub guest_timeout: Option<Duration>,
    /// `compile_cache`, or `no_compile_cache = true` (as `CompileCache::Off`).
    pub compile_cache: Option<CompileCache>,
    pub json: Option<bool>,
    pub quiet: Option<bool>,
    pub no_color: Option<bool>,
    pub log: Option<Targets>,
    pub log_format: Option<LogFormat>,
    pub litegraph_config: Option<PathBuf>,
    pub listen: Option<String>,
    pub admin_token: Option<String>,
    pub request_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub create_database: Option<bool>,
    pub schedule: Option<Schedule>,
    pub drill_every: Option<Duration>,
    pub metrics_listen: Option<String>,
    pub heartbeat_url: Option<String>,
    pub alert_webhook: Option<String>,
    pub retention: FileRetention,
    /// The `[[remote]]` tables, in the file's order.
    pub remotes: Vec<RemoteDraft>,
}

/// The `[retention]` table.
#[derive(Debug, Clone, Default)]
pub struct FileRetention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<Duration>,
    pub include_named: Option<bool>,
}

impl FileSettings {
    /// Reads and checks the configuration file at `path`.
    pub fn load(path: &Path) -> Result<FileSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read the configuration file {}: {e}",
                path.display()
            ))
        })?;
        FileSettings::parse(path, &text)
    }

    /// Checks `text`, the content of the file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let located = e.span().map(|span| Located::at(text, span));
            ConfigError(located.map_or_else(
                || format!("{}: {}", path.display(), e.message()),
                |at| at.error(path, e.message()),
            ))
        })?;
        Checker { path, text }.check(raw)
    }
}

/// Turns the raw file into settings, each value parsed as its flag's value is.
pub(super) struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn check(&self, raw: Raw) -> Result<FileSettings, ConfigError> {
        let memory = |mib: u64| {
            if (1..=MAX_GUEST_MEMORY_MIB).contains(&mib) {
                Ok(mib)
            } else {
                Err(format!("must be 1 to {MAX_GUEST_MEMORY_MIB}"))
            }
        };
        let connections = |n: u64| match usize::try_from(n) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("must be at least 1".to_owned()),
        };
        let token = |token: &str| {
            if token.is_empty() {
                Err("must not be empty".to_owned())
            } else {
                Ok(token.to_owned())
            }
        };
        let listen = |address: &str| Ok(address.to_owned());
        let (serve, retention) = (raw.serve, raw.retention);
        let remotes = RemoteChecker { file: self }.check(raw.remote)?;
        Ok(FileSettings {
            path: self.path.to_owned(),
            database: self.value(raw.database, |p| self.path_in(p))?,
            backups: self.value(raw.backups, |p| self.path_in(p))?,
            busy_timeout: self.value(raw.busy_timeout, |d| parse_duration(d))?,
            policy_component: self.value(raw.policy_component, |p| self.path_in(p))?,
            guest_memory_mib: self.value(raw.guest_memory_mib, |mib| memory(*mib))?,
            guest_timeout: self.value(raw.guest_timeout, |d| parse_duration(d))?,
            compile_cache: self.compile_cache(raw.compile_cache, raw.no_compile_cache)?,
            json: raw.json,
            quiet: raw.quiet,
            no_color: raw.no_color,
            log: self.value(raw.log, |filter| parse_log_filter(filter))?,
            log_format: self.value(raw.log_format, |format| format.parse())?,
            litegraph_config: self.value(raw.litegraph_config, |p| self.path_in(p))?,
            listen: self.value(serve.listen, |a| listen(a))?,
            admin_token: self.value(serve.admin_token, |t| token(t))?,
            request_timeout: self.value(serve.request_timeout, |d| parse_duration(d))?,
            max_connections: self.value(serve.max_connections, |n| connections(*n))?,
            create_database: serve.create_database,
            schedule: self.value(serve.schedule, |s| parse_schedule(s))?,
            drill_every: self.value(serve.drill_every, |d| parse_duration(d))?,
            metrics_listen: self.value(serve.metrics_listen, |a| listen(a))?,
            heartbeat_url: self.value(serve.heartbeat_url, |u| parse_url(u))?,
            alert_webhook: self.value(serve.alert_webhook, |u| parse_url(u))?,
            retention: self.retention(retention)?,
            remotes,
        })
    }

    fn retention(&self, raw: RawRetention) -> Result<FileRetention, ConfigError> {
        let count = |n: &u32| {
            if *n >= 1 {
                Ok(*n)
            } else {
                Err("must be at least 1".to_owned())
            }
        };
        Ok(FileRetention {
            keep_last: self.value(raw.keep_last, count)?,
            keep_hourly: self.value(raw.keep_hourly, count)?,
            keep_daily: self.value(raw.keep_daily, count)?,
            keep_weekly: self.value(raw.keep_weekly, count)?,
            keep_monthly: self.value(raw.keep_monthly, count)?,
            keep_yearly: self.value(raw.keep_yearly, count)?,
            keep_within: self.value(raw.keep_within, |d| parse_keep_within(d))?,
            include_named: raw.include_named,
        })
    }

    /// `compile_cache = "DIR"` or `no_compile_cache = true`; not both.
    fn compile_cache(
        &self,
        directory: Option<Spanned<String>>,
        off: Option<Spanned<bool>>,
    ) -> Result<Option<CompileCache>, ConfigError> {
        let off = off.filter(|off| *off.get_ref());
        if let (Some(_), Some(off)) = (&directory, &off) {
            return Err(self.refuse(
                off.span(),
                "give compile_cache or no_compile_cache, not both",
            ));
        }
        if off.is_some() {
            return Ok(Some(CompileCache::Off));
        }
        Ok(self
            .value(directory, |p| self.path_in(p))?
            .map(CompileCache::In))
    }

    /// A value checked by `parse`; its refusal names the file, the line and the key.
    pub(super) fn value<T, U>(
        &self,
        raw: Option<Spanned<T>>,
        parse: impl Fn(&T) -> Result<U, String>,
    ) -> Result<Option<U>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        parse(raw.get_ref())
            .map(Some)
            .map_err(|why| self.refuse(raw.span(), &why))
    }

    /// A refusal of what is written at `span`, naming the file, the line and the key.
    pub(super) fn refuse(&self, span: Range<usize>, why: &str) -> ConfigError {
        ConfigError(Located::at(self.text, span).error(self.path, why))
    }

    /// The file, as it was named.
    pub(super) fn path(&self) -> &Path {
        self.path
    }

    /// The directory relative paths in the file are relative to.
    pub(super) fn directory(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// A path as the file gives it: a relative one is relative to the file's directory,
    /// so that the file means the same whatever the working directory.
    pub(super) fn path_in(&self, given: &str) -> Result<PathBuf, String> {
        if given.is_empty() {
            return Err("must not be empty".to_owned());
        }
        Ok(self.directory().join(given))
    }
}

/// Where in the file something is: its line and the dotted key written there.
struct Located {
    line: usize,
    key: String,
}

impl Located {
    fn at(text: &str, span: Range<usize>) -> Located {
        let start = span.start.min(text.len());
        let before = text.get(..start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_text = text.lines().nth(line - 1).unwrap_or("");
        let table = before
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('[') && l.contains(']'))
            .map(|header| {
                header
                    .trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_owned()
            });
        let key = key_of(line_text);
        let key = match (table, key) {
            (Some(table), Some(key)) if !line_text.trim_start().starts_with('[') => {
                format!("{table}.{key}")
            }
            (_, Some(key)) => key,
            (Some(table), None) => table,
            (None, None) => String::new(),
        };
        Located { line, key }
    }

    fn error(&self, path: &Path, why: &str) -> String {
        let key = if self.key.is_empty() {
            String::new()
        } else {
            format!(", key `{}`", self.key)
        };
        format!(
            "bad configuration in {}, line {}{key}: {why}",
            path.display(),
            self.line
        )
    }
}

/// The key a line sets (`key = value`), or the table it opens (`[serve]`).
fn key_of(line: &str) -> Option<String> {
    let line = line.trim();
    if line.starts_with('[') {
        let end = line.find(']')?;
        return Some(line[..end].trim_matches('[').trim().to_owned());
    }
    let (key, _) = line.split_once('=')?;
    Some(key.trim().trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileSettings, String> {
        FileSettings::parse(Path::new("/etc/lgb/config.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_option_has_its_key() {
        let settings = parse(
            r#"
database = "/srv/litegraph.db"
backups = "backups"
busy_timeout = "3s"
policy_component = "/opt/policy.wasm"
guest_memory_mib = 128
guest_timeout = "2s"
json = true
quiet = true
no_color = true
log = "warn"
litegraph_config = "litegraph.json"

[serve]
listen = "0.0.0.0:9000"
admin_token = "s3cret"
request_timeout = "1m"
max_connections = 12
create_database = true
schedule = "0 3 * * *"

[retention]
keep_last = 3
keep_hourly = 24
keep_daily = 7
keep_weekly = 4
keep_monthly = 12
keep_yearly = 2
keep_within = "2d"
include_named = true
"#,
        )
        .expect("a whole file");
        assert_eq!(settings.database, Some(PathBuf::from("/srv/litegraph.db")));
        assert_eq!(
            settings.backups,
            Some(PathBuf::from("/etc/lgb/backups")),
            "relative to the file"
        );
        assert_eq!(settings.busy_timeout, Some(Duration::from_secs(3)));
        assert_eq!(settings.guest_memory_mib, Some(128));
        assert_eq!(settings.json, Some(true));
        assert_eq!(settings.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(settings.max_connections, Some(12));
        assert_eq!(settings.schedule, Some("0 3 * * *".parse().expect("cron")));
        assert_eq!(settings.retention.keep_daily, Some(7));
        assert_eq!(
            settings.retention.keep_within,
            Some(Duration::from_secs(2 * 86_400))
        );
        assert_eq!(settings.retention.include_named, Some(true));
    }

    #[test]
    fn an_unknown_key_names_its_line_and_key() {
        let error = parse("database = \"x.db\"\n\n[retention]\nkeep_daily = 7\nkeep_dayly = 7\n")
            .expect_err("a typo");
        assert!(error.contains("/etc/lgb/config.toml, line 5"), "{error}");
        assert!(error.contains("`retention.keep_dayly`"), "{error}");
        assert!(error.contains("unknown field"), "{error}");

        let error = parse("[retension]\nkeep_daily = 7\n").expect_err("a typo'd table");
        assert!(error.contains("line 1, key `retension`"), "{error}");
    }

    #[test]
    fn a_bad_value_names_its_line_and_key() {
        for (text, line, key, why) in [
            ("busy_timeout = \"10\"", 1, "busy_timeout", "unit"),
            (
                "\n[serve]\nschedule = \"0 3 * *\"",
                3,
                "serve.schedule",
                "4 fields",
            ),
            (
                "[retention]\nkeep_daily = 0",
                2,
                "retention.keep_daily",
                "at least 1",
            ),
            (
                "[retention]\nkeep_daily = -1",
                2,
                "retention.keep_daily",
                "u32",
            ),
            (
                "[retention]\nkeep_daily = \"7\"",
                2,
                "retention.keep_daily",
                "string",
            ),
            (
                "guest_memory_mib = 5000",
                1,
                "guest_memory_mib",
                "1 to 4096",
            ),
            (
                "[serve]\nadmin_token = \"\"",
                2,
                "serve.admin_token",
                "empty",
            ),
            ("log = \"info,=[\"", 1, "log", "e.g. info"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(
                error.contains(&format!("line {line}, key `{key}`")),
                "{text}: {error}"
            );
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn a_file_that_is_not_toml_says_where() {
        let error = parse("database = \n").expect_err("no value");
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        let settings = parse("# nothing yet\n").expect("empty");
        assert!(settings.database.is_none() && settings.schedule.is_none());
    }
}
