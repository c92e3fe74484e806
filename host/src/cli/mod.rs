//! The command line: each subcommand is one call of the guest's `backup` interface, rendered
//! as text for people or as LiteGraph's `BackupFile` JSON for programs. The settings live
//! in [`config`]; running the commands in [`commands`]; tables and sizes in [`output`].

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::Error;

mod commands;
mod interrupt;
mod output;

use crate::config::{Config, GlobalArgs, ServeArgs, ServeConfig};

const ABOUT: &str = "Point-in-time backups of a live LiteGraph (SQLite) database";

const LONG_ABOUT: &str = "\
Point-in-time backups of a live LiteGraph (SQLite) database.

Backups are consistent copies made with SQLite's online backup API while the database stays
in use, written to a temporary file, flushed to disk and only then given their name, which is
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
  litegraph-backup serve                       # HTTP API on 127.0.0.1:8701
  curl -H 'Authorization: Bearer litegraphadmin' http://localhost:8701/v1.0/backups

Exit codes:
  0  success
  1  the answer is no (`exists` of a missing backup)
  2  refused as given: usage error, invalid name, name taken, bad configuration
  3  not found: no such backup, no database, no backup directory
  4  damaged: verification failed, restore refused a backup that fails it, corrupt file
  5  busy: the database or another create or restore held the lock past --busy-timeout
  6  any other failure (I/O, internal)
  130  interrupted (SIGINT; 143 for SIGTERM) during create or restore; temporaries removed

Every option can also be set in the environment (LITEGRAPH_*, shown in each option's help;
RUST_LOG and NO_COLOR too); a flag wins over the environment.";

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
    /// `Authorization: Bearer <admin token>`; `GET /health` does not.
    Serve(ServeArgs),
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = match Config::new(&cli.settings, &matches) {
        Ok(config) => config,
        Err(e) => return fail(&e.into()),
    };
    init_logging(&config);
    let result = match &cli.command {
        Command::Serve(args) => {
            let serve_matches = matches.subcommand_matches("serve").unwrap_or(&matches);
            ServeConfig::new(args, serve_matches)
                .map_err(anyhow::Error::from)
                .and_then(|serve| commands::serve(&config, &serve))
                .map(|()| Exit::Success)
        }
        command => commands::run(command, &config, &mut io::stdout().lock()),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
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

/// The log goes to stderr, filtered as RUST_LOG says, coloured only on a terminal and
/// without NO_COLOR.
fn init_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let colour = config.log.colour && io::IsTerminal::is_terminal(&io::stderr());
    let format = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(colour)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(config.log.filter.clone())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_error_has_its_exit_status() {
        let cases = [
            (Error::InvalidName("x".into()), 2),
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

    #[test]
    fn a_flag_wins_over_the_environment_in_either_form() {
        let matches = Cli::command()
            .try_get_matches_from(["litegraph-backup", "--busy-timeout-ms", "250", "list"])
            .expect("parses");
        let cli = Cli::from_arg_matches(&matches).expect("fields");
        let config = Config::new(&cli.settings, &matches).expect("merges");
        assert_eq!(config.busy_timeout, std::time::Duration::from_millis(250));

        let matches = Cli::command()
            .try_get_matches_from([
                "litegraph-backup",
                "list",
                "--busy-timeout",
                "2s",
                "--busy-timeout-ms",
                "5",
            ])
            .expect("parses");
        let cli = Cli::from_arg_matches(&matches).expect("fields");
        assert!(Config::new(&cli.settings, &matches).is_err(), "both forms");
    }
}
