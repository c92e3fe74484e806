//! The command line: each subcommand is one call of the guest's `backup` interface, rendered
//! as text for people or as LiteGraph's `BackupFile` JSON for programs. The settings live
//! in [`config`]; running the commands in [`commands`]; tables and sizes in [`output`].

use std::io;
use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::Error;

mod commands;
mod component;
mod drill;
mod interrupt;
mod logging;
mod output;
mod progress;
mod prune;
mod recover;
mod remote;
mod serve;
mod show_config;
mod status;

use crate::config::{Config, GlobalArgs, RetentionArgs, ServeArgs, ServeConfig};

const ABOUT: &str = "Point-in-time backups of a live LiteGraph (SQLite) database";

const LONG_ABOUT: &str = "\
Point-in-time backups of a live LiteGraph (SQLite) database.

Backups are consistent copies of the database's pages as one read transaction sees them,
made while the database stays in use, written to a temporary file and hashed as it grows,
flushed to disk and only then given their name, which is
never reused: an existing backup is never overwritten. Their MD5, SHA-1 and SHA-256 are
recorded when they are made.

Names are single file names: at most 255 bytes, no '/' or '\\', no control characters, not
'.' or '..', no leading '.', no trailing space or '.'. `show`, `verify` and `restore` take
`latest` for the newest backup (the last of `list`); a backup literally named `latest` is
`./latest` (a leading `./` is always dropped).";

const EXAMPLES: &str = "\
Examples:
  litegraph-backup create                      # backups/litegraph-backup-YYYYMMDD-HHMMSS.db
  litegraph-backup create nightly.db
  litegraph-backup --database /srv/litegraph.db --backups /srv/backups list
  litegraph-backup list --json                 # LiteGraph's BackupFile JSON
  litegraph-backup list --reverse --limit 5    # the five newest, newest first
  litegraph-backup exists nightly.db && echo present
  litegraph-backup delete nightly.db
  litegraph-backup verify latest --full        # exit 0 sound, 4 damaged
  litegraph-backup restore nightly.db          # verified, with a safety backup first
  litegraph-backup drill                       # restore the newest into a scratch db, check it
  litegraph-backup status                      # newest backup, its age, last runs; exit 4 degraded
  litegraph-backup prune --keep-daily 7 --keep-weekly 4 --dry-run
  litegraph-backup serve                       # HTTP API on 127.0.0.1:8701
  litegraph-backup serve --schedule 6h --keep-last 8 --keep-daily 7
  litegraph-backup serve --schedule 1h --drill-every 1d --alert-webhook https://hooks.example/x
  curl -H 'Authorization: Bearer litegraphadmin' http://localhost:8701/metrics   # Prometheus
  litegraph-backup push latest                 # to every [[remote]] target in --config
  litegraph-backup remote list --target offsite
  litegraph-backup recover --to /srv/litegraph.db --latest   # a lost machine, from offsite
  litegraph-backup --config /etc/litegraph-backup.toml config   # what is in effect, and why
  curl -H 'Authorization: Bearer litegraphadmin' http://localhost:8701/v1.0/backups

Every option can also be set in the environment (LITEGRAPH_*, shown in each option's help;
RUST_LOG and NO_COLOR too) and in the --config file (TOML: the option's name with `_` for
`-`, serve's under [serve], the --keep-* rules under [retention]). A flag wins over the
environment, which wins over the --config file, which wins over LiteGraph's litegraph.json
(--litegraph-config), which wins over the default.";

/// What each exit status means, in every command's `--help`.
const EXIT_CODES: &str = "Exit codes:
  0  success
  1  the answer is no (`exists` of a missing backup)
  2  refused as given: usage error, invalid name, name taken (or recover's --to exists), bad
     configuration, credentials or age keys refused
  3  not found: no such backup, no database, no backup directory
  4  damaged: verification or a drill failed, restore refused a backup that fails it,
     corrupt file; `status`: degraded
  5  busy: the database or another create or restore held the lock past --busy-timeout
  6  any other failure (I/O, internal, a remote target unreachable; a prune whose removal
     failed, the others done)
  130  interrupted (SIGINT; 143 for SIGTERM) during create, restore or drill; temporaries
       and scratch copies removed";

/// The command line, with the exit codes in the long help of the program and of each
/// command (a script's author reads the help of the command they call).
fn command_line() -> clap::Command {
    let with_exit_codes = |command: clap::Command| {
        let after = command
            .get_after_help()
            .map(|help| format!("{help}\n\n{EXIT_CODES}"))
            .unwrap_or_else(|| EXIT_CODES.to_owned());
        command.after_long_help(after)
    };
    with_exit_codes(Cli::command()).mut_subcommands(with_exit_codes)
}

#[derive(Debug, Parser)]
#[command(name = "litegraph-backup", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub settings: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the live database now.
    Create {
        /// The backup's file name [default: litegraph-backup-YYYYMMDD-HHMMSS.db, in UTC].
        name: Option<String>,
    },
    /// List the backups, oldest first (by creation time, then by name).
    List {
        /// Show only the N newest backups.
        #[arg(long, env = "LITEGRAPH_LIST_LIMIT", value_name = "N")]
        limit: Option<usize>,
        /// Newest first.
        #[arg(long, env = "LITEGRAPH_LIST_REVERSE",
              value_parser = clap::builder::FalseyValueParser::new())]
        reverse: bool,
        /// Full names and full SHA-256 digests, however wide.
        #[arg(long, env = "LITEGRAPH_LIST_WIDE",
              value_parser = clap::builder::FalseyValueParser::new())]
        wide: bool,
    },
    /// Show one backup's metadata (`latest`: the newest backup).
    Show {
        /// The backup's file name, or `latest`.
        name: String,
    },
    /// Tell whether a backup exists: exit 0 if it does, 1 if it does not.
    Exists {
        /// The backup's file name.
        name: String,
    },
    /// Delete a backup and its metadata.
    Delete {
        /// The backup's file name.
        name: String,
    },
    /// Check a backup: its digests against those recorded when it was made, and SQLite's
    /// quick_check (integrity_check with --full). Exit 0 when sound, 4 otherwise.
    Verify {
        /// The backup's file name, or `latest`.
        name: String,
        /// Run SQLite's full integrity_check (slower) instead of quick_check.
        #[arg(long)]
        full: bool,
    },
    /// Test a restore without touching the live database: exit 0 when it passes, 4 when not.
    ///
    /// The backup (default: the newest) is restored into a scratch database in a private
    /// temporary directory, through the same page-for-page path as `restore`; then SQLite's
    /// full integrity_check runs on it, every table's row count is compared with the
    /// backup's, and LiteGraph's tables are looked for. The scratch copy is removed; the
    /// outcome is kept with the backup's metadata (see `show` and `status`). The scratch
    /// directory is made in the system's temporary directory (TMPDIR), which needs room
    /// for one copy of the backup; Ctrl-C or SIGTERM removes it (exit 130/143), and one a
    /// killed drill left is removed by the next drill. `serve --drill-every` runs this on a
    /// schedule. --json prints
    /// {Passed, Problems, Backup, StartedUtc, Milliseconds, LiteGraphSchema, Tables: [{Name,
    /// InBackup, Restored}]}. Exit 3 when there is no backup.
    Drill {
        /// The backup's file name, or `latest` [default: the newest backup].
        name: Option<String>,
    },
    /// The state of the backups: the newest and its age, how many and how large, the last
    /// run of each operation and its outcome, the next scheduled run. Exit 0 when healthy,
    /// 4 when degraded (as /health would say).
    ///
    /// What every process did (this CLI, `serve`, cron jobs) is read from the status record
    /// `.lgb-status.json` in the backup directory; the schedule is the one the last `serve`
    /// recorded there. --json prints {Status, Problems, BackupDirectory, Backups: {Count,
    /// TotalBytes, Newest}, Schedule, Operations: {create: {LastSuccess, LastFailure}, ...}}.
    Status,
    /// Put a backup's content into the live database, online.
    ///
    /// The backup is verified first (a corrupt or tampered one is refused with exit 4 and
    /// nothing is touched), the live database's current content is kept as
    /// pre-restore-YYYYMMDD-HHMMSS.db in the backup directory, then the content is replaced
    /// and checked in the same write transaction. Other connections (a running LiteGraph)
    /// see the old content or the new, never a mix.
    Restore {
        /// The backup's file name, or `latest`.
        name: String,
    },
    /// Serve LiteGraph's backup API (`/v1.0/backups`) over HTTP until SIGINT or SIGTERM.
    ///
    /// Binds the address first; then creates the backup directory when it is missing, and
    /// an empty database in WAL mode (as LiteGraph does on first start) only when it is the
    /// default one or --create-database is given. Every backup route needs
    /// `Authorization: Bearer <admin token>`; `GET /health` does not, and `GET /metrics`
    /// (Prometheus) does unless it is read from --metrics-listen.
    ///
    /// `/health` answers 503 Degraded, with the reasons, when the backup directory or the
    /// database is gone, the backups cannot be listed, the last scheduled run failed (and no
    /// backup was made since), the newest backup is older than two periods of the schedule
    /// or failed its last restore drill, or there is no backup though the schedule ran.
    /// `status` applies the same rules.
    ///
    /// With --schedule, it also makes a backup on that schedule (create, verify, then the
    /// --keep-* rules), one run at a time; after downtime, one catch-up run at start when
    /// a run fell due since the newest scheduled backup.
    Serve(ServeArgs),
    /// Remove the backups that no retention rule keeps (restic's `forget` rules).
    #[command(long_about = PRUNE_ABOUT, after_help = PRUNE_EXAMPLES)]
    Prune(PruneArgs),
    /// Copy backups to the remote targets: offsite copies, encoded as each target says.
    #[command(long_about = PUSH_ABOUT, after_help = remote::PUSH_EXAMPLES)]
    Push(PushArgs),
    /// What a remote target holds, checked and pruned: `remote list`, `remote verify`,
    /// `remote prune`.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Copy a backup from a remote target into the backup directory, checked.
    ///
    /// Downloaded and decoded into a temporary, its stored and decoded digests checked
    /// against the target's manifest and SQLite's quick_check run; only then published under
    /// its name, which must be free (exit 2 when a local backup has it). A mismatch keeps
    /// nothing (exit 4). The backup directory is created when missing.
    #[command(after_help = remote::PULL_EXAMPLES)]
    Pull(PullArgs),
    /// Make a database file from a backup, local or remote: for a machine that lost
    /// everything.
    #[command(long_about = recover::ABOUT, after_help = recover::EXAMPLES)]
    Recover(RecoverArgs),
    /// Write the policy component this binary runs, for another host.
    #[command(long_about = component::ABOUT, after_help = component::EXAMPLES)]
    Component(component::ComponentArgs),
    /// Print the effective configuration: each value and where it came from.
    ///
    /// Every setting of every command and of `serve`, with its source: flag, env VARIABLE,
    /// file PATH (--config), litegraph.json PATH (--litegraph-config) or default. The admin
    /// token is never shown. Takes `serve`'s options too, to show what `serve` would run
    /// with; --json prints [{"Key", "Value", "Source", "From"}].
    Config(ConfigArgs),
}

const PRUNE_ABOUT: &str = "\
Remove the backups that no retention rule keeps, with restic's `forget` rules.

A backup is kept when any rule keeps it (a union), and removed only when none does:
  --keep-last N      the N newest backups
  --keep-hourly N    the newest backup of each of the last N hours that have a backup
  --keep-daily N     ... days, --keep-weekly N ... ISO weeks, --keep-monthly N ... months,
  --keep-yearly N    ... years (hours, days and so on without a backup do not count)
  --keep-within D    every backup made within D (e.g. 2d) before the newest one
Times are UTC, and a backup's time is the one recorded when it was made, never the file's.
A rule that finds fewer than N buckets also keeps the oldest backup (as restic since 0.16).

Never removed, whatever the rules: the newest backup, the newest one that passed
verification, and backups whose names a person chose (only litegraph-backup-* and
pre-restore-* names are subject to the rules unless --include-named). A prune with no rule
is refused (exit 2): it would remove everything. Removals go through the same path as
`delete`; one that fails is reported and the others go on, then the exit status is 6.
Rules may also come from LITEGRAPH_KEEP_* and the [retention] table of --config; each rule
from its highest source, and rules from different sources add up.";

const PRUNE_EXAMPLES: &str = "\
Examples:
  # hourly backups: keep a day of hourly ones, a week of daily, a month of weekly
  litegraph-backup prune --keep-hourly 24 --keep-daily 7 --keep-weekly 4 --dry-run
  litegraph-backup prune --keep-last 10 --json   # [{Backup, Keep, Reasons, RemovalFailed?}]";

/// `prune`'s options.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Decide and print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

const PUSH_ABOUT: &str = "\
Copy backups to the remote targets ([[remote]] in --config, or --remote): offsite copies.

Each backup goes to a fresh object, streamed, compressed and encrypted on this machine as the
target says (zstd, then age), and hashed as it is read: bytes that are not those recorded
when the backup was made are refused (exit 4) and nothing is left. A small manifest is
written last, create-only: an upload without one is unfinished and never used. A target
that holds the backup already is left as it was. Without --target, every target receives
it. `latest` names the newest local backup.";

/// Which target a command addresses; needed when several are configured.
#[derive(Debug, Clone, Args)]
pub struct TargetArg {
    /// The remote target, by its name ([[remote]] name = ...; `default` for --remote).
    /// Needed when several are configured.
    #[arg(long, env = "LITEGRAPH_BACKUP_TARGET", value_name = "NAME")]
    pub target: Option<String>,
}

/// `push`'s options.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The backup to push, or `latest`.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Push every local backup that a target does not hold yet, oldest first.
    #[arg(long)]
    pub all: bool,
    /// Push to this target only [default: every target].
    #[arg(long, env = "LITEGRAPH_BACKUP_TARGET", value_name = "NAME")]
    pub target: Option<String>,
}

/// `remote`'s commands.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// List the backups a target holds, oldest first, from their manifests.
    #[command(after_help = remote::LIST_EXAMPLES)]
    List {
        #[command(flatten)]
        target: TargetArg,
    },
    /// Download, decode and check a remote backup, keeping nothing: exit 0 when sound, 4
    /// when damaged.
    ///
    /// The stored object's SHA-256 and the decoded content's MD5, SHA-1 and SHA-256 are
    /// checked against the target's manifest, and SQLite's quick_check is run on the
    /// decoded content. Decrypting needs the target's age identity file.
    Verify {
        /// The backup's name, or `latest` (the newest the target holds).
        name: String,
        #[command(flatten)]
        target: TargetArg,
    },
    /// Remove from a target the backups no retention rule keeps (the rules of `prune`).
    ///
    /// The same rules, protections and reasons as `prune`, applied to what the target holds
    /// (its newest backup is never removed); also removes objects no manifest names that
    /// are over an hour old (what interrupted pushes left). Rules also come from
    /// LITEGRAPH_KEEP_* and [retention] in --config.
    #[command(after_help = remote::PRUNE_EXAMPLES)]
    Prune(RemotePruneArgs),
}

/// `remote prune`'s options.
#[derive(Debug, Args)]
pub struct RemotePruneArgs {
    #[command(flatten)]
    pub target: TargetArg,

    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Decide and print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `pull`'s options.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The backup's name, or `latest` (the newest the target holds).
    pub name: String,
    #[command(flatten)]
    pub target: TargetArg,
}

/// `recover`'s options.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Where to write the database file; nothing may exist there (missing parent
    /// directories are created).
    #[arg(long, value_name = "PATH")]
    pub to: std::path::PathBuf,
    /// The backup: a local one (verified first), else pulled from the target.
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub name: Option<String>,
    /// The newest backup by creation time, among the local ones and the target's.
    #[arg(long)]
    pub latest: bool,
    #[command(flatten)]
    pub target: TargetArg,
}

/// `config`'s options: `serve`'s, to show what `serve` would run with.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What a script can act on: the process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    No = 1,
    Refused = 2,
    NotFound = 3,
    Damaged = 4,
    Busy = 5,
    Failed = 6,
}

impl Exit {
    /// The exit status of a guest or host error: the one mapping from errors to codes.
    pub fn of(error: &Error) -> Exit {
        match error {
            Error::InvalidName(_)
            | Error::InvalidArgument(_)
            | Error::Exist
            | Error::NotPermitted(_) => Exit::Refused,
            Error::NotFound | Error::NoDatabase(_) => Exit::NotFound,
            Error::Corrupt(_) => Exit::Damaged,
            Error::Busy => Exit::Busy,
            Error::Io(_) | Error::Guest(_) => Exit::Failed,
        }
    }
}

/// An error with the exit status it calls for; any other error exits with
/// [`Exit::Failed`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn error(exit: Exit, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            exit,
            message: message.into(),
        })
    }
}

/// Runs the command line of this process.
pub fn main() -> ExitCode {
    let matches = command_line().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = match Config::new(&matches) {
        Ok(config) => config,
        Err(e) => return fail(&e.into()),
    };
    logging::init_logging(&config);
    for warning in &config.warnings {
        warn(&cli.command, warning);
    }
    // A --compile-cache that cannot be used is found when the policy is compiled: said as
    // `warn` says the settings' warnings.
    if !matches!(cli.command, Command::Serve(_)) {
        crate::runtime::CompileCache::warn_on_stderr();
    }
    let result = run(&cli.command, &matches, &config);
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn run(command: &Command, matches: &ArgMatches, config: &Config) -> anyhow::Result<Exit> {
    let own = |name: &str| matches.subcommand_matches(name).unwrap_or(matches);
    // Not held by `serve`, whose threads may write.
    let out = || io::stdout().lock();
    match command {
        Command::Serve(_) => {
            let serve = ServeConfig::new(own("serve"), config)?;
            serve::serve(config, &serve).map(|()| Exit::Success)
        }
        Command::Prune(args) => {
            let (rules, _) = config.retention(own("prune"));
            prune::prune(config, &rules, args.dry_run, &mut out())
        }
        Command::Config(_) => {
            let serve = ServeConfig::new(own("config"), config)?;
            show_config::show(config, &serve, &mut out())
        }
        Command::Push(args) => remote::push(config, args, &mut out()),
        Command::Pull(args) => remote::pull(config, args, &mut out()),
        Command::Recover(args) => recover::recover(config, args, &mut out()),
        Command::Remote(RemoteCommand::Prune(args)) => {
            let prune = own("remote").subcommand_matches("prune").unwrap_or(matches);
            let (rules, _) = config.retention(prune);
            remote::prune(config, args, &rules, &mut out())
        }
        Command::Remote(command) => remote::run(command, config, &mut out()),
        Command::Drill { name } => drill::drill(config, name.as_deref(), &mut out()),
        Command::Status => status::status(config, &mut out()),
        Command::Component(args) => component::write(args, config.json, &mut out()),
        command => commands::run(command, config, &mut out()),
    }
}

/// A warning about the settings: in `serve`'s log, or on stderr for a command (whose log
/// shows errors only).
fn warn(command: &Command, warning: &str) {
    match command {
        Command::Serve(_) => tracing::warn!("{warning}"),
        _ => eprintln!("warning: {warning}"),
    }
}

/// Prints one line on stderr and picks the exit status.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    let exit = match error.downcast_ref::<Failure>() {
        Some(failure) => failure.exit,
        None if error.is::<crate::config::ConfigError>() => Exit::Refused,
        None => Exit::Failed,
    };
    ExitCode::from(exit as u8)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        command_line().debug_assert();
    }

    #[test]
    fn every_error_has_its_exit_status() {
        let cases = [
            (Error::InvalidName("x".into()), 2),
            (Error::InvalidArgument("x".into()), 2),
            (Error::Exist, 2),
            (Error::NotPermitted("x".into()), 2),
            (Error::NotFound, 3),
            (Error::NoDatabase("x".into()), 3),
            (Error::Corrupt("x".into()), 4),
            (Error::Busy, 5),
            (Error::Io("x".into()), 6),
            (Error::Guest("x".into()), 6),
        ];
        for (error, code) in cases {
            assert_eq!(Exit::of(&error) as u8, code, "{error:?}");
        }
    }
}
