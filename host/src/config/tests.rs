//! The merge: flag > environment > configuration file > litegraph.json > default, each value
//! with its source. (The environment's place is tested end to end in tests/it: a unit test
//! cannot set one without `unsafe`.)

use std::fs;
use std::path::Path;

use clap::CommandFactory;

use super::*;
use crate::cli::Cli;

fn matches(args: &[&str]) -> ArgMatches {
    let mut argv = vec!["litegraph-backup"];
    argv.extend_from_slice(args);
    Cli::command()
        .try_get_matches_from(argv)
        .expect("the command line parses")
}

fn entry<'a>(report: &'a [Entry], key: &str) -> &'a Entry {
    report
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no {key} in {report:?}"))
}

fn serve(args: &[&str]) -> Result<(Config, ServeConfig), ConfigError> {
    let all = matches(args);
    let config = Config::new(&all)?;
    let serve = ServeConfig::new(all.subcommand_matches("serve").expect("serve"), &config)?;
    Ok((config, serve))
}

#[test]
fn a_flag_wins_over_the_environment_in_either_form() {
    let config = Config::new(&matches(&["--busy-timeout-ms", "250", "list"])).expect("merges");
    assert_eq!(config.busy_timeout, Duration::from_millis(250));
    assert_eq!(entry(&config.report, "busy_timeout").source, Source::Flag);

    let both = matches(&["list", "--busy-timeout", "2s", "--busy-timeout-ms", "5"]);
    assert!(Config::new(&both).is_err(), "both forms");
}

#[test]
fn defaults_say_they_are_defaults() {
    let (config, serve) = serve(&["serve"]).expect("merges");
    assert_eq!(config.database.path, PathBuf::from(DEFAULT_DATABASE));
    assert!(!config.database.named);
    assert_eq!(config.busy_timeout, DEFAULT_BUSY_TIMEOUT);
    assert_eq!(serve.listen, DEFAULT_LISTEN);
    assert_eq!(serve.admin_token, DEFAULT_ADMIN_TOKEN);
    assert_eq!(serve.max_connections, crate::http::DEFAULT_MAX_CONNECTIONS);
    assert!(serve.schedule.is_none() && serve.retention.is_empty());
    for entry in config.report.iter().chain(&serve.report) {
        assert_eq!(entry.source, Source::Default, "{entry:?}");
    }
}

#[test]
fn a_flag_beats_the_file_which_beats_litegraph_json_which_beats_the_default() {
    let dir = tempfile::tempdir().expect("scratch");
    let litegraph = dir.path().join("litegraph.json");
    fs::write(
        &litegraph,
        r#"{"LiteGraph": {"AdminBearerToken": "from-litegraph", "GraphRepositoryFilename": "lg.db"},
            "Storage": {"BackupsDirectory": "./lg-backups/"}}"#,
    )
    .expect("write litegraph.json");
    let file = dir.path().join("config.toml");
    fs::write(
        &file,
        format!(
            "litegraph_config = {:?}\nbusy_timeout = \"3s\"\nbackups = \"file-backups\"\n\
             [serve]\nlisten = \"127.0.0.1:9\"\nschedule = \"1d\"\n[retention]\nkeep_daily = 7\n",
            litegraph.display().to_string()
        ),
    )
    .expect("write the file");
    let file_arg = file.display().to_string();
    let (config, serve) = serve(&[
        "--config",
        &file_arg,
        "--busy-timeout",
        "4s",
        "serve",
        "--keep-last",
        "2",
    ])
    .expect("merges");

    assert_eq!(
        config.busy_timeout,
        Duration::from_secs(4),
        "flag over file"
    );
    assert_eq!(entry(&config.report, "busy_timeout").source, Source::Flag);
    assert_eq!(
        config.backups.path,
        dir.path().join("file-backups"),
        "file over litegraph.json"
    );
    assert_eq!(
        entry(&config.report, "backups").source,
        Source::File(file.clone())
    );
    assert_eq!(
        config.database.path,
        dir.path().join("lg.db"),
        "litegraph.json over default"
    );
    assert!(config.database.named);
    assert_eq!(
        entry(&config.report, "database").source,
        Source::LiteGraph(litegraph.clone())
    );
    assert_eq!(serve.admin_token, "from-litegraph");
    assert_eq!(
        entry(&serve.report, "serve.admin_token").value,
        "<redacted>"
    );
    assert_eq!(serve.listen, "127.0.0.1:9");
    assert_eq!(serve.schedule, Some("1d".parse().expect("a schedule")));
    assert_eq!(
        serve.retention.keep_daily,
        Some(7),
        "rules of all sources add up"
    );
    assert_eq!(serve.retention.keep_last, Some(2));
    assert_eq!(
        entry(&serve.report, "retention.keep_last").source,
        Source::Flag
    );
}

#[test]
fn a_file_with_a_typo_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("config.toml");
    fs::write(
        &file,
        "database = \"x.db\"\n[serve]\nlisten = \"127.0.0.1:1\"\nshedule = \"6h\"\n",
    )
    .expect("write");
    let error = Config::new(&matches(&["--config", &file.display().to_string(), "list"]))
        .expect_err("a typo")
        .to_string();
    assert!(
        error.contains(&format!("{}, line 4, key `serve.shedule`", file.display())),
        "{error}"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let error = Config::new(&matches(&["--config", "/nonexistent/lgb.toml", "list"]))
        .expect_err("missing")
        .to_string();
    assert!(error.contains("/nonexistent/lgb.toml"), "{error}");
}

#[test]
fn litegraph_on_postgresql_is_refused_unless_a_database_is_given() {
    let dir = tempfile::tempdir().expect("scratch");
    let litegraph = dir.path().join("litegraph.json");
    fs::write(
        &litegraph,
        r#"{"LiteGraph": {"Database": {"Type": "Postgresql"}}}"#,
    )
    .expect("write");
    let path = litegraph.display().to_string();
    let error = Config::new(&matches(&["--litegraph-config", &path, "list"]))
        .expect_err("no SQLite file")
        .to_string();
    assert!(
        error.contains("Postgresql") && error.contains("--database"),
        "{error}"
    );
    let config = Config::new(&matches(&[
        "--litegraph-config",
        &path,
        "--database",
        "a.db",
        "list",
    ]))
    .expect("a database given");
    assert_eq!(config.database.path, Path::new("a.db"));
}

#[test]
fn retention_on_serve_without_a_schedule_is_kept_for_the_api() {
    let (_, serve) = serve(&["serve", "--keep-daily", "7"]).expect("no schedule needed");
    assert_eq!(serve.retention.keep_daily, Some(7));
    assert!(serve.schedule.is_none());
}

#[test]
fn retention_flags_are_counts_of_at_least_one() {
    assert!(
        Cli::command()
            .try_get_matches_from(["litegraph-backup", "prune", "--keep-last", "0"])
            .is_err()
    );
    assert!(
        Cli::command()
            .try_get_matches_from(["litegraph-backup", "prune", "--keep-within", "500ms"])
            .is_err()
    );
}

#[test]
fn a_bad_schedule_is_refused_as_the_flag_is_read() {
    let error = Cli::command()
        .try_get_matches_from(["litegraph-backup", "serve", "--schedule", "0 3 * * * *"])
        .expect_err("six fields")
        .to_string();
    assert!(error.contains("5-field cron expression"), "{error}");
}

#[test]
fn the_help_names_the_defaults_in_force() {
    // clap no longer shows defaults itself (a value may come from a file): the help's own
    // words must stay true.
    let mut command = Cli::command();
    let serve = command
        .find_subcommand_mut("serve")
        .expect("serve")
        .render_long_help()
        .to_string();
    for default in [
        format!("[default: {}]", crate::http::DEFAULT_MAX_CONNECTIONS),
        format!("[default: {DEFAULT_LISTEN}]"),
        format!("[default: {DEFAULT_ADMIN_TOKEN},"),
        format!(
            "[default: {}]",
            humantime::format_duration(crate::http::DEFAULT_REQUEST_TIMEOUT)
        ),
    ] {
        assert!(serve.contains(&default), "serve --help lacks {default}");
    }
    let global = command.render_long_help().to_string();
    for default in [
        format!("[default: {}]", Limits::default().memory_bytes >> 20),
        format!(
            "[default: {}]",
            humantime::format_duration(Limits::default().guest_time)
        ),
        format!(
            "[default: {}]",
            humantime::format_duration(DEFAULT_BUSY_TIMEOUT)
        ),
        format!("[default: {DEFAULT_DATABASE}]"),
    ] {
        assert!(global.contains(&default), "--help lacks {default}");
    }
}
