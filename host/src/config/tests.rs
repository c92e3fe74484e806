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

/// An environment for the remote targets' `AWS_*` variables, without touching the process's.
struct FakeEnvironment(Vec<(&'static str, &'static str)>);

impl Environment for FakeEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn with_file(text: &str, args: &[&str], env: &FakeEnvironment) -> Result<Config, String> {
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("config.toml");
    fs::write(&file, text).expect("write");
    let file_arg = file.display().to_string();
    let mut argv = vec!["--config", file_arg.as_str()];
    argv.extend_from_slice(args);
    Config::new_in(&matches(&argv), env).map_err(|e| e.to_string())
}

#[test]
fn remote_tables_become_targets() {
    let config = with_file(
        &format!(
            r#"
[[remote]]
name = "offsite"
url = "s3://bucket/lgb/prod/"
endpoint = "http://127.0.0.1:8014"
region = "eu-west-1"
compression = "zstd"
age_recipients = ["{RECIPIENT}"]
age_identity_file = "key.txt"
access_key_id = "AKIDFILE"
secret_access_key = "file-secret"

[[remote]]
name = "usb"
url = "file:///mnt/usb/backups"
zstd_level = 9
"#
        ),
        &["list"],
        &FakeEnvironment(vec![]),
    )
    .expect("two targets");
    let [offsite, usb] = &config.remotes[..] else {
        panic!("{:?}", config.remotes)
    };
    let crate::remote::Location::S3 {
        bucket,
        prefix,
        endpoint,
        region,
        allow_http,
        credentials,
    } = &offsite.location
    else {
        panic!("{offsite:?}")
    };
    assert_eq!((bucket.as_str(), prefix.as_str()), ("bucket", "lgb/prod"));
    assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:8014"));
    assert_eq!(region.as_deref(), Some("eu-west-1"));
    assert!(*allow_http, "plain HTTP to loopback needs no saying");
    let credentials = credentials.as_ref().expect("from the file");
    assert_eq!(credentials.access_key_id, "AKIDFILE");
    assert_eq!(credentials.secret_access_key.expose(), "file-secret");
    assert_eq!(offsite.zstd_level, Some(DEFAULT_ZSTD_LEVEL));
    assert_eq!(offsite.recipients, [RECIPIENT]);
    assert!(offsite.identity_files[0].ends_with("key.txt"));
    assert!(
        offsite.identity_files[0].is_absolute(),
        "relative to the file"
    );
    assert_eq!(
        usb.location,
        crate::remote::Location::Directory("/mnt/usb/backups".into())
    );
    assert_eq!(usb.zstd_level, Some(9));
    assert!(usb.recipients.is_empty());
}

#[test]
fn secrets_never_show_in_the_report() {
    let config = with_file(
        "[[remote]]\nname = \"offsite\"\nurl = \"s3://b\"\naccess_key_id = \"AKIDFILE\"\n\
         secret_access_key = \"file-secret\"\nsession_token = \"file-token\"\n",
        &["config"],
        &FakeEnvironment(vec![]),
    )
    .expect("merges");
    let shown = format!("{:?} {:?}", config.report, config.remotes);
    assert!(
        !shown.contains("file-secret") && !shown.contains("file-token"),
        "{shown}"
    );
    assert_eq!(
        entry(&config.report, "remote.offsite.secret_access_key").value,
        "<set>"
    );
    assert_eq!(
        entry(&config.report, "remote.offsite.access_key_id").value,
        "AKIDFILE"
    );
}

#[test]
fn aws_variables_fill_in_what_the_table_leaves_out() {
    let env = FakeEnvironment(vec![
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("AWS_ENDPOINT_URL", "http://localhost:9000"),
    ]);
    let config = with_file(
        "[[remote]]\nname = \"offsite\"\nurl = \"s3://b/p\"\n",
        &["list"],
        &env,
    )
    .expect("merges");
    let crate::remote::Location::S3 {
        endpoint,
        region,
        credentials,
        allow_http,
        ..
    } = &config.remotes[0].location
    else {
        panic!("s3")
    };
    assert_eq!(endpoint.as_deref(), Some("http://localhost:9000"));
    assert_eq!(region.as_deref(), Some("us-west-2"));
    assert!(*allow_http);
    let credentials = credentials.as_ref().expect("from the environment");
    assert_eq!(credentials.access_key_id, "AKIDENV");
    assert_eq!(
        entry(&config.report, "remote.offsite.secret_access_key").source,
        Source::Env("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY".into())
    );
    assert_eq!(
        entry(&config.report, "remote.offsite.region").source,
        Source::Env("AWS_DEFAULT_REGION".into())
    );

    let half = FakeEnvironment(vec![("AWS_ACCESS_KEY_ID", "AKIDENV")]);
    let error = with_file(
        "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\n",
        &["list"],
        &half,
    )
    .expect_err("half the credentials");
    assert!(error.contains("AWS_SECRET_ACCESS_KEY is not"), "{error}");
}

#[test]
fn bad_remote_tables_name_their_line_and_key() {
    let none = FakeEnvironment(vec![]);
    for (text, expected) in [
        ("[[remote]]\nurl = \"s3://b\"\n", "needs `name`"),
        ("[[remote]]\nname = \"o\"\n", "needs `url`"),
        (
            "[[remote]]\nname = \"o p\"\nurl = \"s3://b\"\n",
            "line 2, key `remote.name`",
        ),
        ("[[remote]]\nname = \"o\"\nurl = \"s3:///p\"\n", "no bucket"),
        (
            "[[remote]]\nname = \"o\"\nurl = \"gs://b\"\n",
            "gs:// is not a kind of target",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\ncompression = \"gzip\"\n",
            "line 4, key `remote.compression`",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\nzstd_level = 22\n",
            "1 to 19",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\nage_recipients = [\"ssh-ed25519 AAAA\"]\n",
            "not an age X25519 recipient",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\naccess_key_id = \"A\"\n",
            "together",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\nsecret_acess_key = \"x\"\n",
            "line 4, key `remote.secret_acess_key`",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"/srv/x\"\nendpoint = \"http://127.0.0.1:1\"\n",
            "s3:// targets only",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\nendpoint = \"http://10.0.0.5:9000\"\n",
            "plain HTTP beyond this machine",
        ),
        (
            "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\n[[remote]]\nname = \"o\"\nurl = \"/x\"\n",
            "configured twice",
        ),
    ] {
        let error = with_file(text, &["list"], &none).expect_err(text);
        assert!(error.contains(expected), "{text}: {error}");
    }
    let allowed = "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\nendpoint = \"http://10.0.0.5:9000\"\nallow_http = true\n";
    assert!(with_file(allowed, &["list"], &none).is_ok());
}

#[test]
fn the_remote_flag_replaces_the_tables_with_one_target() {
    let config = with_file(
        "[[remote]]\nname = \"offsite\"\nurl = \"s3://b\"\n",
        &[
            "--remote",
            "s3://other/x",
            "--remote-endpoint",
            "http://127.0.0.1:8014",
            "--age-recipient",
            RECIPIENT,
            "--age-identity",
            "/k/key.txt",
            "--zstd",
            "push",
            "--all",
        ],
        &FakeEnvironment(vec![]),
    )
    .expect("merges");
    let [target] = &config.remotes[..] else {
        panic!("{:?}", config.remotes)
    };
    assert_eq!(target.name, FLAG_TARGET);
    assert_eq!(target.zstd_level, Some(DEFAULT_ZSTD_LEVEL));
    assert_eq!(target.recipients, [RECIPIENT]);
    assert_eq!(target.identity_files, [PathBuf::from("/k/key.txt")]);
    assert_eq!(
        entry(&config.report, "remote.default.url").source,
        Source::Flag
    );
}

#[test]
fn a_recipients_file_is_read_like_age_reads_it() {
    let dir = tempfile::tempdir().expect("scratch");
    fs::write(
        dir.path().join("recipients.txt"),
        format!("# the offsite key\n\n{RECIPIENT}\n"),
    )
    .expect("write");
    let file = dir.path().join("config.toml");
    fs::write(
        &file,
        "[[remote]]\nname = \"o\"\nurl = \"d\"\nage_recipients_file = \"recipients.txt\"\n",
    )
    .expect("write");
    let config = Config::new_in(
        &matches(&["--config", &file.display().to_string(), "list"]),
        &FakeEnvironment(vec![]),
    )
    .expect("merges");
    assert_eq!(config.remotes[0].recipients, [RECIPIENT]);
    assert_eq!(
        config.remotes[0].location,
        crate::remote::Location::Directory(dir.path().join("d")),
        "a directory relative to the file"
    );
}

#[test]
fn a_secret_in_a_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("config.toml");
    fs::write(
        &file,
        "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\naccess_key_id = \"A\"\nsecret_access_key = \"S\"\n",
    )
    .expect("write");
    let load = || {
        Config::new_in(
            &matches(&["--config", &file.display().to_string(), "list"]),
            &FakeEnvironment(vec![]),
        )
        .expect("merges")
    };
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let warnings = load().warnings;
    assert!(
        warnings.iter().any(|w| w.contains("chmod 600")),
        "{warnings:?}"
    );
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(load().warnings.is_empty());
}

/// What a first-time operator ran into: an empty recipients list, options of the
/// `--remote` target given without it.
mod operator;

// Found by the operator review: `config` showed the password of a heartbeat URL.
#[test]
fn urls_show_their_scheme_and_host_only() {
    let shown = |url: &str| super::show_url(&Some(url.to_owned()));
    assert_eq!(
        shown("https://user:pw@hc-ping.com/0f7a-secret"),
        "https://<redacted>@hc-ping.com/<redacted>"
    );
    assert_eq!(shown("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    assert_eq!(
        shown("https://hooks.example.com/x?token=1"),
        "https://hooks.example.com/<redacted>"
    );
    assert_eq!(super::show_url(&None), "(none)");
}

#[test]
fn the_compile_cache_is_in_the_users_cache_directory() {
    let with = |env: &[(&'static str, &'static str)]| {
        let config =
            Config::new_in(&matches(&["list"]), &FakeEnvironment(env.to_vec())).expect("merges");
        assert_eq!(
            entry(&config.report, "compile_cache").source,
            Source::Default
        );
        config.compile_cache
    };
    let cache = |under: &str, path: &str| CompileCache::Default {
        under: PathBuf::from(under),
        directory: PathBuf::from(path),
    };
    assert_eq!(
        with(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/u")]),
        cache("/xdg", "/xdg/litegraph-backup")
    );
    assert_eq!(
        with(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/home/u")]),
        cache("/home/u", "/home/u/.cache/litegraph-backup"),
        "the specification says to ignore a relative XDG_CACHE_HOME"
    );
    assert_eq!(with(&[]), CompileCache::Off, "no home: nothing is kept");
}

#[test]
fn the_compile_cache_is_named_or_turned_off_on_one_level() {
    let home = FakeEnvironment(vec![("HOME", "/home/u")]);
    let config = Config::new_in(&matches(&["--no-compile-cache", "list"]), &home).expect("off");
    assert_eq!(config.compile_cache, CompileCache::Off);
    assert_eq!(entry(&config.report, "compile_cache").value, "(off)");
    assert_eq!(entry(&config.report, "compile_cache").source, Source::Flag);

    let config =
        Config::new_in(&matches(&["list", "--compile-cache", "/c"]), &home).expect("named");
    assert_eq!(config.compile_cache, CompileCache::In(PathBuf::from("/c")));

    let both = matches(&["--compile-cache", "/c", "--no-compile-cache", "list"]);
    let error = Config::new_in(&both, &home).expect_err("both").to_string();
    assert!(error.contains("not both"), "{error}");

    let config = with_file("no_compile_cache = true\n", &["list"], &home).expect("off");
    assert_eq!(config.compile_cache, CompileCache::Off);
    let config = with_file(
        "compile_cache = \"cache\"\n",
        &["--no-compile-cache", "list"],
        &home,
    )
    .expect("the flag wins");
    assert_eq!(config.compile_cache, CompileCache::Off);
    let config = with_file("compile_cache = \"cache\"\n", &["list"], &home).expect("named");
    let CompileCache::In(path) = config.compile_cache else {
        panic!("a directory");
    };
    assert!(
        path.ends_with("cache") && path.is_absolute(),
        "relative to the file: {path:?}"
    );
    let error = with_file(
        "compile_cache = \"cache\"\nno_compile_cache = true\n",
        &["list"],
        &home,
    )
    .expect_err("both");
    assert!(error.contains("line 2, key `no_compile_cache`"), "{error}");
}
