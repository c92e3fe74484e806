//! Running each command: open what it needs, make one call of the policy, print the answer,
//! and turn a failure into one line that names the operation, the paths involved and the
//! exit status a script can act on.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::interrupt::remove_temporaries_on_interrupt;
use super::output::{TableStyle, Totals, write_checks, write_details, write_table};
use super::{Command, Exit, Failure};
use crate::config::Config;
use crate::remote::Targets;
use crate::store::BackupDir;
use crate::{BackupFile, Capabilities, Error, Policy, Runtime};

/// The name `show`, `verify` and `restore` take for the newest backup.
pub(super) const LATEST: &str = "latest";

/// Runs one command but `serve`; returns the exit status of an answer.
pub fn run(command: &Command, config: &Config, out: &mut impl Write) -> anyhow::Result<Exit> {
    match command {
        Command::Create { name } => create(config, name.as_deref().map(plain_name), out),
        Command::List {
            limit,
            reverse,
            wide,
        } => list(config, *limit, *reverse, TableStyle { wide: *wide }, out),
        Command::Show { name } => show(config, name, out),
        Command::Exists { name } => exists(config, plain_name(name), out),
        Command::Delete { name } => delete(config, plain_name(name), out),
        Command::Verify { name, full } => verify(config, name, *full, out),
        Command::Restore { name } => restore(config, name, out),
        Command::Serve(_)
        | Command::Prune(_)
        | Command::Config(_)
        | Command::Push(_)
        | Command::Pull(_)
        | Command::Recover(_)
        | Command::Drill { .. }
        | Command::Status
        | Command::Component(_)
        | Command::Remote(_) => {
            unreachable!("run by cli::run with their own settings")
        }
    }
}

fn create(config: &Config, name: Option<&str>, out: &mut impl Write) -> anyhow::Result<Exit> {
    let backups = &config.backups.path;
    let made_directories = ensure_directory(backups)?;
    let created = runtime(config).and_then(|runtime| {
        remove_temporaries_on_interrupt("no backup was made".to_owned(), backups.clone())?;
        runtime
            .create(name)
            .map_err(|e| explain(e, &Operation::Create(name), config))
    });
    let backup = match created {
        Ok(backup) => backup,
        Err(e) => {
            // A refused create leaves nothing behind, not even the directories it made;
            // `remove_dir` only removes one while it is empty (once the status record of
            // the failure, which no one would read there, and the operation's lock file,
            // released with the operation, are gone).
            for made in made_directories.iter().rev() {
                crate::monitor::status::forget(made);
                crate::store::forget_operation_lock(made);
                let _ = std::fs::remove_dir(made);
            }
            return Err(e);
        }
    };
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&backup)?)?;
    } else if !config.quiet {
        writeln!(out, "created {}", backups.join(&backup.filename).display())?;
        write_details(out, &backup)?;
    }
    Ok(Exit::Success)
}

fn list(
    config: &Config,
    limit: Option<usize>,
    reverse: bool,
    style: TableStyle,
    out: &mut impl Write,
) -> anyhow::Result<Exit> {
    let (backups, leftovers) = if no_backups_yet(config) {
        (Vec::new(), (0, 0))
    } else {
        let runtime = runtime(config)?;
        let backups = runtime
            .list()
            .map_err(|e| explain(e, &Operation::List, config))?;
        // Only a count for the totals line: a directory that cannot be read for it has
        // already answered the listing.
        let leftovers = runtime
            .capabilities()
            .backups
            .leftovers()
            .unwrap_or_default();
        (backups, leftovers)
    };
    let totals = Totals {
        count: backups.len(),
        bytes: backups.iter().map(|b| b.length).sum(),
        leftovers,
    };
    let shown = select(backups, limit, reverse);
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&shown)?)?;
    } else if totals.count == 0 {
        writeln!(out, "no backups in {}", config.backups.path.display())?;
    } else {
        write_table(out, &shown, style, totals)?;
    }
    Ok(Exit::Success)
}

/// The newest `limit` backups of a list that is oldest first, newest first if `reverse`.
fn select(mut backups: Vec<BackupFile>, limit: Option<usize>, reverse: bool) -> Vec<BackupFile> {
    if let Some(limit) = limit {
        backups.drain(..backups.len().saturating_sub(limit));
    }
    if reverse {
        backups.reverse();
    }
    backups
}

fn show(config: &Config, name: &str, out: &mut impl Write) -> anyhow::Result<Exit> {
    let runtime = runtime(config)?;
    let name = resolve(&runtime, name, config)?;
    let failed = |e| explain(e, &Operation::Show(&name), config);
    if config.json {
        // LiteGraph's BackupFile, exactly: what the policy records beside it is text only.
        let backup = runtime.read(&name).map_err(failed)?;
        writeln!(out, "{}", serde_json::to_string(&backup)?)?;
    } else {
        let details = runtime.details(&name).map_err(failed)?;
        write_details(out, &details.backup)?;
        write_checks(out, &details)?;
    }
    Ok(Exit::Success)
}

fn exists(config: &Config, name: &str, out: &mut impl Write) -> anyhow::Result<Exit> {
    let exists = if no_backups_yet(config) {
        false
    } else {
        runtime(config)?
            .exists(name)
            .map_err(|e| explain(e, &Operation::Exists(name), config))?
    };
    if config.json {
        writeln!(out, "{exists}")?;
    } else if !config.quiet {
        let verdict = if exists { "exists" } else { "does not exist" };
        writeln!(out, "{name} {verdict}")?;
    }
    Ok(if exists { Exit::Success } else { Exit::No })
}

fn delete(config: &Config, name: &str, out: &mut impl Write) -> anyhow::Result<Exit> {
    runtime(config)?
        .delete(name)
        .map_err(|e| explain(e, &Operation::Delete(name), config))?;
    if !config.json && !config.quiet {
        writeln!(out, "deleted {name}")?;
    }
    Ok(Exit::Success)
}

fn verify(config: &Config, name: &str, full: bool, out: &mut impl Write) -> anyhow::Result<Exit> {
    let runtime = runtime(config)?;
    let name = resolve(&runtime, name, config)?;
    let verdict = runtime
        .verify(&name, full)
        .map_err(|e| explain(e, &Operation::Verify(&name), config))?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&verdict)?)?;
    } else if config.quiet {
    } else if !verdict.verified {
        // The verdict is the answer: on stdout, one problem a line; stderr says it failed.
        writeln!(out, "{name}: FAILED")?;
        for problem in &verdict.problems {
            writeln!(out, "  - {problem}")?;
        }
    } else if verdict.digests_recorded_now {
        writeln!(
            out,
            "{name}: OK ({} ok; no digests had been recorded for it, so they were recorded now)",
            verdict.check
        )?;
    } else {
        writeln!(out, "{name}: OK (digests match, {} ok)", verdict.check)?;
    }
    if !verdict.verified {
        return Err(Failure::error(
            Exit::Damaged,
            format!(
                "{name} in {} failed verification ({} problem{})",
                config.backups.path.display(),
                verdict.problems.len(),
                if verdict.problems.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(Exit::Success)
}

fn restore(config: &Config, name: &str, out: &mut impl Write) -> anyhow::Result<Exit> {
    let runtime = runtime(config)?;
    let name = resolve(&runtime, name, config)?;
    // Replaced by the restore's own report once it has begun (whether it had committed).
    remove_temporaries_on_interrupt(
        "the restore had not begun: nothing was changed".to_owned(),
        config.backups.path.clone(),
    )?;
    let restoration = runtime
        .restore(&name)
        .map_err(|e| explain(e, &Operation::Restore(&name), config))?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&restoration)?)?;
    } else if !config.quiet {
        writeln!(
            out,
            "restored {} into {}; its previous content is in {}",
            restoration.restored.filename,
            config.database.path.display(),
            config
                .backups
                .path
                .join(&restoration.safety_backup.filename)
                .display()
        )?;
    }
    Ok(Exit::Success)
}

/// The policy component: the built-in one, or `--policy-component`.
pub(super) fn policy(config: &Config) -> anyhow::Result<Policy> {
    let refused = |message: String| Failure::error(Exit::Refused, message);
    match &config.policy_component {
        None => Policy::compile(crate::GUEST_COMPONENT, config.limits, &config.compile_cache),
        Some(path) => {
            let component = std::fs::read(path).map_err(|e| {
                refused(format!(
                    "cannot read policy component {}: {e}",
                    path.display()
                ))
            })?;
            Policy::compile(&component, config.limits, &config.compile_cache).map_err(|e| {
                refused(format!(
                    "{} is not a usable policy component: {e}",
                    path.display()
                ))
            })
        }
    }
}

/// Compiles the policy and lends it the backup directory (which must exist).
pub(super) fn runtime(config: &Config) -> anyhow::Result<Runtime> {
    let backups = open_backup_dir(config)?;
    let capabilities = Capabilities::new(config.live_database(), backups)
        .with_progress(super::progress::sink(config));
    Ok(Runtime::from_policy(&policy(config)?, capabilities))
}

/// [`runtime`], lending the remote targets too. They are opened first: a recipient or
/// identity that cannot be used stops the command before anything is read or written.
pub(super) fn remote_runtime(config: &Config) -> anyhow::Result<Runtime> {
    runtime_with(config, open_targets(config)?)
}

/// [`runtime`], lending these remote targets too.
pub(super) fn runtime_with(config: &Config, targets: Targets) -> anyhow::Result<Runtime> {
    let backups = open_backup_dir(config)?;
    let capabilities = Capabilities::new(config.live_database(), backups)
        .with_remotes(targets)
        .with_progress(super::progress::sink(config));
    Ok(Runtime::from_policy(&policy(config)?, capabilities))
}

/// Opens the configured remote targets (none is fine: `serve` then pushes nothing).
pub(super) fn open_targets(config: &Config) -> anyhow::Result<Targets> {
    Targets::open(config.remotes.clone()).map_err(|e| {
        Failure::error(
            Exit::Refused,
            format!("cannot use the remote targets: {e:#}"),
        )
    })
}

pub(super) fn open_backup_dir(config: &Config) -> anyhow::Result<BackupDir> {
    let path = &config.backups.path;
    let shown = path.display();
    BackupDir::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound if config.backups.named => Failure::error(
            Exit::NotFound,
            format!("backup directory {shown} does not exist"),
        ),
        io::ErrorKind::NotFound => Failure::error(
            Exit::NotFound,
            format!("no backups in {shown}: it does not exist yet (`create` makes it)"),
        ),
        io::ErrorKind::NotADirectory => Failure::error(
            Exit::Refused,
            format!("the backup directory {shown} is not a directory"),
        ),
        _ => Failure::error(
            Exit::Failed,
            format!("cannot open backup directory {shown}: {e}"),
        ),
    })
}

/// Before the first backup the default directory does not exist yet: that is no backups,
/// not an error. A directory the operator named must exist.
pub(super) fn no_backups_yet(config: &Config) -> bool {
    !config.backups.named && !config.backups.path.exists()
}

/// A name as the policy sees it: a leading `./` is dropped, so that `./latest` names a
/// backup called `latest`.
pub(super) fn plain_name(name: &str) -> &str {
    name.strip_prefix("./").unwrap_or(name)
}

/// `latest` is the newest backup (the last of `list`); any other name is itself.
pub(super) fn resolve(runtime: &Runtime, name: &str, config: &Config) -> anyhow::Result<String> {
    if name != LATEST {
        return Ok(plain_name(name).to_owned());
    }
    let backups = runtime
        .list()
        .map_err(|e| explain(e, &Operation::List, config))?;
    match backups.into_iter().last() {
        Some(newest) => Ok(newest.filename),
        None => Err(Failure::error(
            Exit::NotFound,
            format!(
                "no backups in {}, so none is the latest",
                config.backups.path.display()
            ),
        )),
    }
}

/// What a command was doing when it failed, for the error's first words.
pub(super) enum Operation<'a> {
    Create(Option<&'a str>),
    List,
    Prune,
    Show(&'a str),
    Exists(&'a str),
    Delete(&'a str),
    Verify(&'a str),
    Restore(&'a str),
    /// A drill of this backup, or of the newest.
    Drill(Option<&'a str>),
}

impl Operation<'_> {
    fn name(&self) -> Option<&str> {
        match self {
            Operation::Create(name) | Operation::Drill(name) => *name,
            Operation::List | Operation::Prune => None,
            Operation::Show(name)
            | Operation::Exists(name)
            | Operation::Delete(name)
            | Operation::Verify(name)
            | Operation::Restore(name) => Some(name),
        }
    }

    /// "cannot <this>: ..."
    fn describe(&self, config: &Config) -> String {
        let dir = config.backups.path.display();
        let database = config.database.path.display();
        match self {
            Operation::Create(Some(name)) => {
                format!("create backup {name:?} of {database} in {dir}")
            }
            Operation::Create(None) => format!("create a backup of {database} in {dir}"),
            Operation::List => format!("list the backups in {dir}"),
            Operation::Prune => format!("prune the backups in {dir}"),
            Operation::Show(name) => format!("read backup {name:?} in {dir}"),
            Operation::Exists(name) => format!("look up backup {name:?} in {dir}"),
            Operation::Delete(name) => format!("delete backup {name:?} in {dir}"),
            Operation::Verify(name) => format!("verify backup {name:?} in {dir}"),
            Operation::Restore(name) => {
                format!("restore backup {name:?} from {dir} into {database}")
            }
            Operation::Drill(Some(name)) => format!("drill backup {name:?} in {dir}"),
            Operation::Drill(None) => format!("drill the newest backup in {dir}"),
        }
    }
}

/// One line a person can act on, naming the operation and the paths it was about, with
/// the exit status of the error.
pub(super) fn explain(error: Error, operation: &Operation, config: &Config) -> anyhow::Error {
    let dir = config.backups.path.display();
    let exit = Exit::of(&error);
    let message = match (&error, operation.name()) {
        (Error::InvalidName(why), Some(name)) => format!("invalid backup name {name:?}: {why}"),
        (Error::NotFound, Some(name)) => format!("no backup named {name:?} in {dir}"),
        (Error::Exist, Some(name)) => {
            format!("a backup named {name:?} exists already in {dir}; it was left untouched")
        }
        (Error::Guest(why), _) => format!(
            "cannot {}: internal error: the policy component failed: {why}",
            operation.describe(config)
        ),
        _ => format!("cannot {}: {error}", operation.describe(config)),
    };
    Failure::error(exit, message)
}

/// Creates the backup directory and any missing parents; returns those it made, outermost
/// first.
pub(super) fn ensure_directory(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let missing: Vec<PathBuf> = path
        .ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
        .map(Path::to_owned)
        .collect();
    let outermost_first: Vec<PathBuf> = missing.into_iter().rev().collect();
    for (made, dir) in outermost_first.iter().enumerate() {
        if let Err(e) = std::fs::create_dir(dir) {
            for undo in outermost_first[..made].iter().rev() {
                let _ = std::fs::remove_dir(undo);
            }
            return Err(Failure::error(
                Exit::Failed,
                format!("cannot create backup directory {}: {e}", dir.display()),
            ));
        }
    }
    Ok(outermost_first)
}
