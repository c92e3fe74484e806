//! LiteGraph's own settings file, `litegraph.json` (`--litegraph-config FILE`): the operator
//! points at the file LiteGraph already has instead of repeating its database, backup
//! directory and admin token. Only those three are read; the rest of the file is
//! LiteGraph's and is left alone, unknown keys included.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The parts of `litegraph.json` this tool reads (LiteGraph's `Settings` class).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Settings {
    #[serde(default)]
    lite_graph: LiteGraphSection,
    #[serde(default)]
    storage: StorageSection,
}

/// `LiteGraph`: the token, and the database (`Database` since LiteGraph 5 has other
/// providers; `GraphRepositoryFilename` before, still read by LiteGraph for SQLite).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LiteGraphSection {
    admin_bearer_token: Option<String>,
    graph_repository_filename: Option<String>,
    database: Option<DatabaseSection>,
    #[serde(default)]
    in_memory: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DatabaseSection {
    #[serde(rename = "Type")]
    kind: Option<String>,
    filename: Option<String>,
    #[serde(default)]
    in_memory: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StorageSection {
    backups_directory: Option<String>,
}

/// What `litegraph.json` says, with relative paths resolved against its directory (LiteGraph
/// reads `./litegraph.json` from its working directory, so its paths are relative to it).
#[derive(Debug, Clone)]
pub struct LiteGraphSettings {
    /// The file, as it was named.
    pub path: PathBuf,
    /// LiteGraph's SQLite database, or why there is no file to back up.
    pub database: Result<Option<PathBuf>, String>,
    pub backups: Option<PathBuf>,
    pub admin_token: Option<String>,
}

impl LiteGraphSettings {
    /// Reads LiteGraph's settings file at `path`.
    pub fn load(path: &Path) -> Result<LiteGraphSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read LiteGraph's settings {}: {e}",
                path.display()
            ))
        })?;
        LiteGraphSettings::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<LiteGraphSettings, ConfigError> {
        let settings: Settings = serde_json::from_str(text).map_err(|e| {
            ConfigError(format!(
                "bad LiteGraph settings in {}, line {}: {e}",
                path.display(),
                e.line()
            ))
        })?;
        let directory = path.parent().unwrap_or(Path::new(""));
        let resolve = |given: Option<String>| {
            given
                .filter(|given| !given.is_empty())
                .map(|given| directory.join(given))
        };
        let database = database(&settings.lite_graph).map(resolve);
        Ok(LiteGraphSettings {
            path: path.to_owned(),
            database,
            backups: resolve(settings.storage.backups_directory),
            admin_token: settings
                .lite_graph
                .admin_bearer_token
                .filter(|token| !token.is_empty()),
        })
    }
}

/// The SQLite filename LiteGraph uses, or why it has none: another provider, or a database
/// kept in memory.
fn database(section: &LiteGraphSection) -> Result<Option<String>, String> {
    let database = section.database.as_ref();
    if let Some(kind) = database.and_then(|d| d.kind.as_deref())
        && !kind.eq_ignore_ascii_case("sqlite")
    {
        return Err(format!(
            "LiteGraph.Database.Type is {kind}: litegraph-backup backs up SQLite databases only"
        ));
    }
    if section.in_memory || database.is_some_and(|d| d.in_memory) {
        return Err(
            "LiteGraph keeps its database in memory (InMemory): there is no file to \
                    back up"
                .to_owned(),
        );
    }
    Ok(database
        .and_then(|d| d.filename.clone())
        .or_else(|| section.graph_repository_filename.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> LiteGraphSettings {
        LiteGraphSettings::parse(Path::new("/srv/litegraph/litegraph.json"), text)
            .expect("LiteGraph's settings")
    }

    #[test]
    fn the_database_directory_and_token_come_from_litegraphs_file() {
        let settings = parse(
            r#"{
  "Rest": { "Hostname": "*", "Port": 8701 },
  "LiteGraph": {
    "AdminBearerToken": "s3cret",
    "GraphRepositoryFilename": "./data/litegraph.db",
    "Database": { "Type": "Sqlite", "Filename": "./data/litegraph.db", "InMemory": false },
    "MaxConcurrentOperations": 4
  },
  "Storage": { "BackupsDirectory": "./backups/" }
}"#,
        );
        assert_eq!(
            settings.database,
            Ok(Some(PathBuf::from("/srv/litegraph/./data/litegraph.db")))
        );
        assert_eq!(
            settings.backups,
            Some(PathBuf::from("/srv/litegraph/./backups/"))
        );
        assert_eq!(settings.admin_token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn the_older_graph_repository_filename_is_read_too() {
        let settings = parse(r#"{"LiteGraph": {"GraphRepositoryFilename": "/var/lg.db"}}"#);
        assert_eq!(settings.database, Ok(Some(PathBuf::from("/var/lg.db"))));
        assert_eq!(settings.backups, None);
        assert_eq!(settings.admin_token, None);
    }

    #[test]
    fn another_provider_or_memory_has_no_file_to_back_up() {
        let postgres =
            parse(r#"{"LiteGraph": {"Database": {"Type": "Postgresql", "Filename": "x.db"}}}"#);
        assert!(
            postgres
                .database
                .expect_err("not SQLite")
                .contains("Postgresql")
        );
        let memory = parse(r#"{"LiteGraph": {"InMemory": true}}"#);
        assert!(
            memory
                .database
                .expect_err("in memory")
                .contains("in memory")
        );
    }

    #[test]
    fn a_broken_file_names_its_line() {
        let error = LiteGraphSettings::parse(Path::new("lg.json"), "{\n  \"LiteGraph\": [\n")
            .expect_err("broken");
        assert!(error.to_string().contains("lg.json, line"), "{error}");
    }
}
