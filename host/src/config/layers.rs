//! How a value is picked: from the first layer that has it (flag or environment, then the
//! configuration file, then LiteGraph's settings), else the default; and the report of
//! where each came from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

use super::{ConfigError, Entry, FileSettings, GlobalArgs, LiteGraphSettings, ServeArgs, Source};

/// The configuration file and LiteGraph's settings file, when given.
#[derive(Debug, Clone, Default)]
pub(super) struct Files {
    pub(super) config: Option<FileSettings>,
    pub(super) litegraph: Option<LiteGraphSettings>,
}

/// The places a value may come from, in order, for one command's options.
pub(super) struct Layers<'a> {
    pub(super) matches: &'a ArgMatches,
    pub(super) files: &'a Files,
}

impl Layers<'_> {
    /// The value of option `id` if a flag or an environment variable gave it.
    pub(super) fn given<T: Clone + Send + Sync + 'static>(&self, id: &str) -> Option<(T, Source)> {
        let source = match self.matches.value_source(id)? {
            ValueSource::CommandLine => Source::Flag,
            ValueSource::EnvVariable => Source::Env(env_variable(id)),
            _ => return None,
        };
        Some((self.matches.get_one::<T>(id)?.clone(), source))
    }

    /// A value of the configuration file.
    pub(super) fn file<T>(
        &self,
        pick: impl FnOnce(&FileSettings) -> Option<T>,
    ) -> Option<(T, Source)> {
        let file = self.files.config.as_ref()?;
        Some((pick(file)?, Source::File(file.path.clone())))
    }

    /// A value of LiteGraph's settings file.
    pub(super) fn litegraph<T>(
        &self,
        pick: impl FnOnce(&LiteGraphSettings) -> Option<T>,
    ) -> Option<(T, Source)> {
        let settings = self.files.litegraph.as_ref()?;
        Some((pick(settings)?, Source::LiteGraph(settings.path.clone())))
    }

    /// A timeout given as a duration (`--busy-timeout 10s`) or in milliseconds
    /// (`--busy-timeout-ms 10000`): a flag wins over the environment whichever its form;
    /// two forms on the same level are refused.
    pub(super) fn timeout(
        &self,
        duration_id: &str,
        millis_id: &str,
    ) -> Result<Option<(Duration, Source)>, ConfigError> {
        let rank = |id: &str| match self.matches.value_source(id) {
            Some(ValueSource::CommandLine) => 2,
            Some(ValueSource::EnvVariable) => 1,
            _ => 0,
        };
        let flag = |id: &str| format!("--{}", id.replace('_', "-"));
        match (rank(duration_id), rank(millis_id)) {
            (0, 0) => Ok(None),
            (a, b) if a == b => Err(ConfigError(format!(
                "give {} or {}, not both",
                flag(duration_id),
                flag(millis_id)
            ))),
            (a, b) if a > b => Ok(self.given::<Duration>(duration_id)),
            _ => Ok(self
                .given::<u64>(millis_id)
                .map(|(ms, source)| (Duration::from_millis(ms), source))),
        }
    }
}

/// Collects the report while the values are picked.
#[derive(Default)]
pub(super) struct Report(pub(super) Vec<Entry>);

impl Report {
    /// Takes `picked`, or the default, and notes it as `shown` shows it.
    pub(super) fn take<T>(
        &mut self,
        key: &'static str,
        picked: Option<(T, Source)>,
        default: impl FnOnce() -> T,
        shown: impl FnOnce(&T) -> String,
    ) -> (T, Source) {
        let (value, source) = picked.unwrap_or_else(|| (default(), Source::Default));
        self.note(key.to_owned(), shown(&value), source.clone());
        (value, source)
    }

    /// Notes a value picked elsewhere (the remote targets, whose keys hold their names).
    pub(super) fn note(&mut self, key: String, value: String, source: Source) {
        self.0.push(Entry { key, value, source });
    }
}

pub(super) fn show_path(path: &Path) -> String {
    path.display().to_string()
}

pub(super) fn show_duration(duration: &Duration) -> String {
    humantime::format_duration(*duration).to_string()
}

pub(super) fn show_optional<T: fmt::Display>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), ToString::to_string)
}

/// The environment variable of option `id`, as the options declare it.
fn env_variable(id: &str) -> String {
    let command = ServeArgs::augment_args(GlobalArgs::augment_args(clap::Command::new("all")));
    command
        .get_arguments()
        .find(|arg| arg.get_id() == id)
        .and_then(|arg| arg.get_env())
        .map_or_else(|| "?".to_owned(), |env| env.to_string_lossy().into_owned())
}

pub(super) fn show_optional_path(path: &Option<PathBuf>) -> String {
    show_optional(&path.as_ref().map(|p| p.display()))
}
