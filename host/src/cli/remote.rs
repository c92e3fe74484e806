//! The offsite commands: `push`, `pull`, `remote list`, `remote verify`, `remote prune`.
//! Each opens the remote targets first (bad keys stop it before anything moves), makes the
//! policy's call and prints the answer; errors name the backup and the target.

use std::io::Write;

use unicode_width::UnicodeWidthStr;

use super::commands::Operation;
use super::commands::{
    LATEST, ensure_directory, explain, open_targets, plain_name, remote_runtime, resolve,
    runtime_with,
};
use super::output::{human_size, pad_to_cells, write_details};
use super::prune::{NO_RULE, failed_removals, write_decisions};
use super::{Exit, Failure, PullArgs, PushArgs, RemoteCommand, RemotePruneArgs, TargetArg};
use crate::config::Config;
use crate::{Error, PushOutcome, RemoteBackup, Retention, Runtime};

pub const PUSH_EXAMPLES: &str = "\
Examples:
  litegraph-backup push latest                    # the newest backup, to every target
  litegraph-backup push nightly.db --target offsite
  litegraph-backup push --all --json              # [{Uploaded, Remote: {Target, Backup, Key, ...}}]
  litegraph-backup --remote s3://bucket/lgb --age-recipient age1... push latest";

pub const PULL_EXAMPLES: &str = "\
Examples:
  litegraph-backup pull litegraph-backup-20250527-030000.db --target offsite
  litegraph-backup pull latest                    # the newest the (only) target holds";

pub const LIST_EXAMPLES: &str = "\
Examples:
  litegraph-backup remote list
  litegraph-backup remote list --target offsite --json   # [{Target, Backup, Key, Encoding, ...}]";

pub const PRUNE_EXAMPLES: &str = "\
Examples:
  litegraph-backup remote prune --target offsite --keep-daily 30 --keep-monthly 12 --dry-run";

/// The target a command addresses: the one named, or the only one configured.
pub(super) fn one_target(config: &Config, given: &TargetArg) -> anyhow::Result<String> {
    let names: Vec<&str> = config.remotes.iter().map(|t| t.name.as_str()).collect();
    match (&given.target, names.as_slice()) {
        (_, []) => Err(no_target()),
        (Some(name), _) => known_target(config, name).map(|()| name.clone()),
        (None, [only]) => Ok((*only).to_owned()),
        (None, several) => Err(Failure::error(
            Exit::Refused,
            format!(
                "{} remote targets are configured ({}): give --target",
                several.len(),
                several.join(", ")
            ),
        )),
    }
}

fn known_target(config: &Config, name: &str) -> anyhow::Result<()> {
    if config.remotes.iter().any(|t| t.name == name) {
        return Ok(());
    }
    let names: Vec<&str> = config.remotes.iter().map(|t| t.name.as_str()).collect();
    Err(Failure::error(
        Exit::Refused,
        format!(
            "no remote target named {name:?} (configured: {})",
            names.join(", ")
        ),
    ))
}

pub(super) fn no_target() -> anyhow::Error {
    Failure::error(
        Exit::Refused,
        "no remote target is configured: add a [[remote]] table to the --config file, or give \
         --remote s3://BUCKET/PREFIX (or a directory)",
    )
}

/// What a remote command was doing, for the error's first words.
pub(super) enum RemoteOperation<'a> {
    Push(&'a str, Option<&'a str>),
    Pull(&'a str, &'a str),
    List(&'a str),
    Verify(&'a str, &'a str),
    Prune(&'a str),
}

impl RemoteOperation<'_> {
    fn describe(&self) -> String {
        match self {
            RemoteOperation::Push(name, Some(target)) => {
                format!("push backup {name:?} to remote target {target}")
            }
            RemoteOperation::Push(name, None) => {
                format!("push backup {name:?} to the remote targets")
            }
            RemoteOperation::Pull(name, target) => {
                format!("pull backup {name:?} from remote target {target}")
            }
            RemoteOperation::List(target) => format!("list remote target {target}"),
            RemoteOperation::Verify(name, target) => {
                format!("verify backup {name:?} on remote target {target}")
            }
            RemoteOperation::Prune(target) => format!("prune remote target {target}"),
        }
    }
}

/// One line a person can act on, with the exit status of the error.
pub(super) fn explain_remote(
    error: Error,
    operation: &RemoteOperation,
    config: &Config,
) -> anyhow::Error {
    let exit = Exit::of(&error);
    let dir = config.backups.path.display();
    let message = match (&error, operation) {
        (Error::NotFound, RemoteOperation::Push(name, _)) => {
            format!("no backup named {name:?} in {dir}")
        }
        (Error::NotFound, RemoteOperation::Pull(name, target))
        | (Error::NotFound, RemoteOperation::Verify(name, target)) => {
            format!("remote target {target} holds no backup named {name:?}")
        }
        (Error::Exist, RemoteOperation::Pull(name, _)) => format!(
            "a backup named {name:?} exists already in {dir}; it was left untouched (delete \
             it first, or use it as it is)"
        ),
        (Error::Guest(why), _) => format!(
            "cannot {}: internal error: the policy component failed: {why}",
            operation.describe()
        ),
        _ => format!("cannot {}: {error}", operation.describe()),
    };
    Failure::error(exit, message)
}

pub fn run(command: &RemoteCommand, config: &Config, out: &mut impl Write) -> anyhow::Result<Exit> {
    match command {
        RemoteCommand::List { target } => list(config, target, out),
        RemoteCommand::Verify { name, target } => verify(config, name, target, out),
        RemoteCommand::Prune(_) => unreachable!("run by cli::run with its retention rules"),
    }
}

/// `push NAME | --all [--target T]`.
pub fn push(config: &Config, args: &PushArgs, out: &mut impl Write) -> anyhow::Result<Exit> {
    if config.remotes.is_empty() {
        return Err(no_target());
    }
    if let Some(target) = &args.target {
        known_target(config, target)?;
    }
    let runtime = remote_runtime(config)?;
    let names = match &args.name {
        Some(name) => vec![resolve(&runtime, name, config)?],
        None => runtime
            .list()
            .map_err(|e| explain(e, &Operation::List, config))?
            .into_iter()
            .map(|b| b.filename)
            .collect(),
    };
    // One target at a time (not `push(name, None)`, which stops at the first failure, by
    // contract): a target that is down must not keep the backup from the others.
    let targets: Vec<&str> = match &args.target {
        Some(target) => vec![target.as_str()],
        None => config.remotes.iter().map(|t| t.name.as_str()).collect(),
    };
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for name in &names {
        for target in &targets {
            match runtime.push(name, Some(target)) {
                Ok(pushed) => {
                    if !config.json && !config.quiet {
                        write_pushed(out, &pushed)?;
                    }
                    outcomes.extend(pushed);
                }
                // One backup or target that fails does not keep the others back.
                Err(e) => failures.push(explain_remote(
                    e,
                    &RemoteOperation::Push(name, Some(target)),
                    config,
                )),
            }
        }
    }
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&outcomes)?)?;
    }
    if args.all && names.is_empty() && !config.json && !config.quiet {
        writeln!(
            out,
            "no backups in {} to push",
            config.backups.path.display()
        )?;
    }
    first_of(failures, names.len() * targets.len())
}

/// The exit of a run of pushes: the first failure's, saying how many failed.
fn first_of(mut failures: Vec<anyhow::Error>, attempted: usize) -> anyhow::Result<Exit> {
    if failures.is_empty() {
        return Ok(Exit::Success);
    }
    let count = failures.len();
    let first = failures.remove(0);
    if attempted == 1 {
        return Err(first);
    }
    for other in &failures {
        eprintln!("error: {other:#}");
    }
    let exit = first
        .downcast_ref::<Failure>()
        .map_or(Exit::Failed, |f| f.exit);
    Err(Failure::error(
        exit,
        format!("{count} of {attempted} pushes failed; the first: {first:#}"),
    ))
}

fn write_pushed(out: &mut impl Write, pushed: &[PushOutcome]) -> std::io::Result<()> {
    for outcome in pushed {
        let remote = &outcome.remote;
        if outcome.uploaded {
            writeln!(
                out,
                "pushed {} to {} ({} stored, {})",
                remote.backup.filename,
                remote.target,
                human_size(remote.stored_length),
                encoding(&remote.encoding)
            )?;
        } else {
            writeln!(
                out,
                "{} holds {} already; nothing was uploaded",
                remote.target, remote.backup.filename
            )?;
        }
    }
    Ok(())
}

fn encoding(encoding: &[String]) -> String {
    if encoding.is_empty() {
        "as is".to_owned()
    } else {
        encoding.join("+")
    }
}

/// `pull NAME [--target T]`.
pub fn pull(config: &Config, args: &PullArgs, out: &mut impl Write) -> anyhow::Result<Exit> {
    let target = one_target(config, &args.target)?;
    let runtime = list_runtime(config)?;
    let name = resolve_remote(&runtime, &target, &args.name, config)?;
    let backup = runtime
        .pull(&target, &name)
        .map_err(|e| explain_remote(e, &RemoteOperation::Pull(&name, &target), config))?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&backup)?)?;
    } else if !config.quiet {
        writeln!(
            out,
            "pulled {name} from {target} into {}",
            config.backups.path.display()
        )?;
        write_details(out, &backup)?;
    }
    Ok(Exit::Success)
}

/// `latest` is the newest backup the target holds (the last of its list).
pub(super) fn resolve_remote(
    runtime: &Runtime,
    target: &str,
    name: &str,
    config: &Config,
) -> anyhow::Result<String> {
    if name != LATEST {
        return Ok(plain_name(name).to_owned());
    }
    newest_remote(runtime, target, config)?
        .map(|newest| newest.backup.filename)
        .ok_or_else(|| {
            Failure::error(
                Exit::NotFound,
                format!("remote target {target} holds no backups, so none is the latest"),
            )
        })
}

/// The newest backup `target` holds, if any.
pub(super) fn newest_remote(
    runtime: &Runtime,
    target: &str,
    config: &Config,
) -> anyhow::Result<Option<RemoteBackup>> {
    let held = runtime
        .remote_list(target)
        .map_err(|e| explain_remote(e, &RemoteOperation::List(target), config))?;
    Ok(held.into_iter().last())
}

fn list(config: &Config, target: &TargetArg, out: &mut impl Write) -> anyhow::Result<Exit> {
    let target = one_target(config, target)?;
    let runtime = list_runtime(config)?;
    let held = runtime
        .remote_list(&target)
        .map_err(|e| explain_remote(e, &RemoteOperation::List(&target), config))?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&held)?)?;
    } else if held.is_empty() {
        writeln!(out, "no backups on remote target {target}")?;
    } else {
        write_remote_table(out, &held)?;
    }
    Ok(Exit::Success)
}

/// A runtime for a command about a target: on a machine with no backup directory yet, an
/// empty one is made (downloads are decoded into temporaries there, and `pull` or `recover`
/// need it next anyway).
pub(super) fn list_runtime(config: &Config) -> anyhow::Result<Runtime> {
    let targets = open_targets(config)?;
    ensure_directory(&config.backups.path)?;
    runtime_with(config, targets)
}

fn write_remote_table(out: &mut impl Write, held: &[RemoteBackup]) -> std::io::Result<()> {
    let width = held
        .iter()
        .map(|r| r.backup.filename.width())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    writeln!(
        out,
        "{}  {:>10}  {:>10}  {:<9}  {:<27}  PUSHED (UTC)",
        pad_to_cells("NAME", width),
        "SIZE",
        "STORED",
        "ENCODING",
        "CREATED (UTC)"
    )?;
    for remote in held {
        writeln!(
            out,
            "{}  {:>10}  {:>10}  {:<9}  {:<27}  {}",
            pad_to_cells(&remote.backup.filename, width),
            human_size(remote.backup.length),
            human_size(remote.stored_length),
            encoding(&remote.encoding),
            remote.backup.created_utc.to_string(),
            remote.pushed_utc
        )?;
    }
    let bytes: u64 = held.iter().map(|r| r.stored_length).sum();
    writeln!(
        out,
        "{} backup{} on {}, {} stored",
        held.len(),
        if held.len() == 1 { "" } else { "s" },
        held[0].target,
        human_size(bytes)
    )
}

fn verify(
    config: &Config,
    name: &str,
    target: &TargetArg,
    out: &mut impl Write,
) -> anyhow::Result<Exit> {
    let target = one_target(config, target)?;
    let runtime = list_runtime(config)?;
    let name = resolve_remote(&runtime, &target, name, config)?;
    let verdict = runtime
        .remote_verify(&target, &name)
        .map_err(|e| explain_remote(e, &RemoteOperation::Verify(&name, &target), config))?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&verdict)?)?;
    } else if config.quiet {
    } else if verdict.verified {
        writeln!(
            out,
            "{name} on {target}: OK (stored object and decoded content match the manifest, \
             quick_check ok)"
        )?;
    } else {
        writeln!(out, "{name} on {target}: FAILED")?;
        for problem in &verdict.problems {
            writeln!(out, "  - {problem}")?;
        }
    }
    if !verdict.verified {
        return Err(Failure::error(
            Exit::Damaged,
            format!(
                "{name} on remote target {target} failed verification: {}",
                verdict.problems.join("; ")
            ),
        ));
    }
    Ok(Exit::Success)
}

/// `remote prune [--target T] --keep-... [--dry-run]`.
pub fn prune(
    config: &Config,
    args: &RemotePruneArgs,
    rules: &Retention,
    out: &mut impl Write,
) -> anyhow::Result<Exit> {
    if rules.is_empty() {
        return Err(Failure::error(Exit::Refused, NO_RULE));
    }
    let target = one_target(config, &args.target)?;
    let runtime = list_runtime(config)?;
    let (decisions, aborted) = runtime
        .remote_prune_counting(&target, rules, args.dry_run)
        .map_err(|e| explain_remote(e, &RemoteOperation::Prune(&target), config))?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&decisions)?)?;
    } else if !config.quiet {
        if aborted > 0 {
            writeln!(
                out,
                "aborted {aborted} interrupted upload(s) to {target} that a killed run left"
            )?;
        }
        write_decisions(out, &decisions, args.dry_run)?;
    }
    match failed_removals(&decisions, &format!("remote target {target}")) {
        Some(failure) => Err(failure),
        None => Ok(Exit::Success),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory, FromArgMatches};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec!["litegraph-backup"];
        argv.extend_from_slice(args);
        Cli::command()
            .try_get_matches_from(argv)
            .and_then(|m| Cli::from_arg_matches(&m))
    }

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["litegraph-backup"];
        argv.extend_from_slice(args);
        let matches = Cli::command().try_get_matches_from(argv).expect("parses");
        Config::new(&matches).expect("merges")
    }

    #[test]
    fn push_takes_a_name_or_all_never_both_nor_neither() {
        assert!(matches!(
            parse(&["push", "nightly.db"]).expect("a name").command,
            Command::Push(PushArgs {
                name: Some(_),
                all: false,
                ..
            })
        ));
        assert!(matches!(
            parse(&["push", "--all", "--target", "offsite"])
                .expect("all")
                .command,
            Command::Push(PushArgs {
                name: None,
                all: true,
                target: Some(_)
            })
        ));
        assert!(parse(&["push"]).is_err(), "neither");
        assert!(parse(&["push", "a.db", "--all"]).is_err(), "both");
    }

    #[test]
    fn remote_commands_parse() {
        assert!(matches!(
            parse(&["remote", "list", "--json"]).expect("list").command,
            Command::Remote(RemoteCommand::List { .. })
        ));
        assert!(matches!(
            parse(&["remote", "verify", "latest", "--target", "t"])
                .expect("verify")
                .command,
            Command::Remote(RemoteCommand::Verify { .. })
        ));
        assert!(matches!(
            parse(&["remote", "prune", "--keep-last", "3", "--dry-run"])
                .expect("prune")
                .command,
            Command::Remote(RemoteCommand::Prune(RemotePruneArgs { dry_run: true, .. }))
        ));
        assert!(parse(&["recover", "a.db"]).is_err(), "--to is required");
        assert!(
            parse(&["recover", "--to", "x.db"]).is_err(),
            "a name or --latest"
        );
        assert!(parse(&["recover", "--to", "x.db", "a.db", "--latest"]).is_err());
        assert!(parse(&["recover", "--to", "x.db", "--latest"]).is_ok());
    }

    #[test]
    fn a_target_is_needed_only_among_several() {
        let none = config(&["list"]);
        let error = one_target(&none, &TargetArg { target: None }).expect_err("none");
        assert!(error.to_string().contains("no remote target is configured"));

        let one = config(&["--remote", "/srv/offsite", "list"]);
        assert_eq!(
            one_target(&one, &TargetArg { target: None }).expect("the only one"),
            "default"
        );
        let error = one_target(
            &one,
            &TargetArg {
                target: Some("usb".into()),
            },
        )
        .expect_err("unknown");
        assert!(
            error
                .to_string()
                .contains("no remote target named \"usb\" (configured: default)")
        );
    }
}
