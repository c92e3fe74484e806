//! `config`: the effective configuration, each value with where it came from (flag, env
//! VARIABLE, file PATH, litegraph.json PATH, default); the admin token never shown.

use std::io::Write;

use serde::Serialize;

use super::Exit;
use crate::config::{Config, Entry, ServeConfig, Source};

/// One entry as `config --json` prints it.
#[derive(Serialize)]
struct EntryJson<'a> {
    #[serde(rename = "Key")]
    key: &'a str,
    #[serde(rename = "Value")]
    value: &'a str,
    /// `flag`, `env`, `file`, `litegraph.json` or `default`.
    #[serde(rename = "Source")]
    source: &'static str,
    /// The environment variable, or the file, it came from.
    #[serde(rename = "From", skip_serializing_if = "Option::is_none")]
    from: Option<String>,
}

impl<'a> From<&'a Entry> for EntryJson<'a> {
    fn from(entry: &'a Entry) -> Self {
        let (source, from) = match &entry.source {
            Source::Flag => ("flag", None),
            Source::Env(variable) => ("env", Some(variable.clone())),
            Source::File(path) => ("file", Some(path.display().to_string())),
            Source::LiteGraph(path) => ("litegraph.json", Some(path.display().to_string())),
            Source::Default => ("default", None),
        };
        EntryJson {
            key: &entry.key,
            value: &entry.value,
            source,
            from,
        }
    }
}

/// Prints every setting of the global options and of `serve`.
pub fn show(config: &Config, serve: &ServeConfig, out: &mut impl Write) -> anyhow::Result<Exit> {
    let entries: Vec<&Entry> = config.report.iter().chain(&serve.report).collect();
    if config.json {
        let json: Vec<EntryJson> = entries.iter().map(|e| EntryJson::from(*e)).collect();
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
        return Ok(Exit::Success);
    }
    let key_width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
    let value_width = entries
        .iter()
        .map(|e| e.value.chars().count())
        .max()
        .unwrap_or(0);
    for entry in entries {
        writeln!(
            out,
            "{:<key_width$}  {:<value_width$}  {}",
            entry.key, entry.value, entry.source
        )?;
    }
    Ok(Exit::Success)
}
