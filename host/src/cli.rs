//! The command line: each subcommand is one call of the guest's `backup` interface, rendered
//! as text for people or as LiteGraph's `BackupFile` JSON for programs.
//!
//! Exit codes: 0 success, 1 when the answer is "no" (`exists` of a missing backup), 2 on any
//! error (one line on stderr). A closed stdout (`| head`) is not an error.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::snapshot::{DEFAULT_BUSY_TIMEOUT, LiveDatabase};
use crate::store::BackupDir;
use crate::{BackupFile, Capabilities, Error, Limits, Policy, Runtime};

const ABOUT: &str = "Point-in-time backups of a live LiteGraph (SQLite) database";

const LONG_ABOUT: &str = "\
Point-in-time backups of a live LiteGraph (SQLite) database.

Backups are consistent copies made with SQLite's online backup API while the database stays
in use, written to a temporary file, flushed to disk and only then given their name, which is
never reused: an existing backup is never overwritten. Their MD5, SHA-1 and SHA-256 are
recorded when they are made.

Names are single file names: at most 255 bytes, no '/' or '\\', no control characters, not
'.' or '..', no leading '.', no trailing space or '.'.";

const EXAMPLES: &str = "\
Examples:
  litegraph-backup create                      # backups/litegraph-backup-YYYYMMDD-HHMMSS.db
  litegraph-backup create nightly.db
  litegraph-backup --database /srv/litegraph.db --backups /srv/backups list
  litegraph-backup list --json                 # LiteGraph's BackupFile JSON
  litegraph-backup exists nightly.db && echo present
  litegraph-backup delete nightly.db
  litegraph-backup verify nightly.db --full     # exit 0 sound, 2 damaged
  litegraph-backup restore nightly.db           # verified, with a safety backup first
  litegraph-backup serve                       # HTTP API on 127.0.0.1:8701
  curl -H 'Authorization: Bearer litegraphadmin' http://localhost:8701/v1.0/backups";

#[derive(Debug, Parser)]
#[command(name = "litegraph-backup", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    /// Print LiteGraph's BackupFile JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the database and the backups are, and the limits the policy runs under.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The live LiteGraph database (a SQLite file). It is only read, never created.
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_DB",
        default_value = "litegraph.db",
        value_name = "PATH"
    )]
    pub database: PathBuf,

    /// The directory that holds the backups; `create` makes it when it is missing.
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_BACKUPS",
        default_value = "./backups/",
        value_name = "DIR"
    )]
    pub backups: PathBuf,

    /// How long a backup waits for a write lock on the database to be released.
    #[arg(long, global = true, env = "LITEGRAPH_BUSY_TIMEOUT_MS", value_name = "MS",
          default_value_t = DEFAULT_BUSY_TIMEOUT.as_millis() as u64)]
    pub busy_timeout_ms: u64,

    /// Run this WebAssembly component as the policy instead of the built-in one; it must
    /// implement the `litegraph:backup/backup-service` world (see wit/).
    #[arg(
        long,
        global = true,
        env = "LITEGRAPH_POLICY_COMPONENT",
        value_name = "FILE"
    )]
    pub policy_component: Option<PathBuf>,

    /// The most memory the policy component may use.
    #[arg(long, global = true, value_name = "MIB",
          default_value_t = (Limits::default().memory_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub guest_memory_mib: u64,

    /// The most time the policy component may compute in one operation (time spent copying
    /// or hashing files is the host's and does not count).
    #[arg(long, global = true, value_name = "MS",
          default_value_t = Limits::default().guest_time.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub guest_timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the live database now.
    Create {
        /// The backup's file name [default: litegraph-backup-YYYYMMDD-HHMMSS.db, in UTC].
        name: Option<String>,
    },
    /// List the backups, oldest name first.
    List,
    /// Show one backup's metadata.
    Show {
        /// The backup's file name.
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
    /// quick_check (integrity_check with --full). Exit 0 when sound, 2 otherwise.
    Verify {
        /// The backup's file name.
        name: String,
        /// Run SQLite's full integrity_check (slower) instead of quick_check.
        #[arg(long)]
        full: bool,
    },
    /// Put a backup's content into the live database, online.
    ///
    /// The backup is verified first (a corrupt or tampered one is refused and nothing is
    /// touched), the live database is backed up as pre-restore-YYYYMMDD-HHMMSS.db, then its
    /// content is replaced through SQLite's online backup API and checked. Other connections
    /// (a running LiteGraph) see the old content or the new, never a mix.
    Restore {
        /// The backup's file name.
        name: String,
    },
    /// Serve LiteGraph's backup API (`/v1.0/backups`) over HTTP until SIGINT or SIGTERM.
    ///
    /// Creates the backup directory, and an empty database in WAL mode when there is none
    /// (as LiteGraph does on first start). Every backup route needs
    /// `Authorization: Bearer <admin token>`; `GET /health` does not.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free one; the log says which).
    #[arg(
        long,
        env = "LITEGRAPH_LISTEN",
        default_value = "127.0.0.1:8701",
        value_name = "ADDR"
    )]
    pub listen: String,

    /// The bearer token that admits a client to the backup routes.
    #[arg(
        long,
        env = "LITEGRAPH_ADMIN_TOKEN",
        default_value = "litegraphadmin",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub admin_token: String,

    /// How long a client may take to send a request's headers, and then its body.
    #[arg(long, value_name = "MS", default_value_t = crate::http::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
}

impl Settings {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_bytes: usize::try_from(self.guest_memory_mib << 20).unwrap_or(usize::MAX),
            guest_time: Duration::from_millis(self.guest_timeout_ms),
        }
    }

    pub fn live_database(&self) -> LiveDatabase {
        LiveDatabase::new(&self.database, Duration::from_millis(self.busy_timeout_ms))
    }

    /// The policy component: the built-in one, or `--policy-component`.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        match &self.policy_component {
            None => Policy::embedded(self.limits()),
            Some(path) => {
                let component = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("cannot read policy component {}: {e}", path.display())
                })?;
                Policy::from_component(&component, self.limits()).map_err(|e| {
                    anyhow::anyhow!("{} is not a usable policy component: {e}", path.display())
                })
            }
        }
    }

    /// Compiles the policy and lends it the backup directory (which must exist).
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        let backups = BackupDir::open(&self.backups).map_err(|e| {
            anyhow::anyhow!(
                "cannot open backup directory {}: {e}",
                self.backups.display()
            )
        })?;
        let capabilities = Capabilities::new(self.live_database(), backups);
        Ok(Runtime::from_policy(&self.policy()?, capabilities))
    }
}

/// What a command found, before it is printed.
enum Outcome {
    Done,
    No,
}

/// Runs the command line of this process.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli, &mut io::stdout().lock()) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::No) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: &Cli, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let settings = &cli.settings;
    let dir = settings.backups.display();
    match &cli.command {
        Command::Create { name } => {
            let made_directories = ensure_directory(&settings.backups)?;
            let created = settings.runtime().and_then(|runtime| {
                runtime
                    .create(name.as_deref())
                    .map_err(|e| explain(e, name.as_deref(), &settings.backups))
            });
            let backup = match created {
                Ok(backup) => backup,
                Err(e) => {
                    // A refused create leaves nothing behind, not even the directories it
                    // made; `remove_dir` only removes one while it is empty.
                    for made in made_directories.iter().rev() {
                        let _ = std::fs::remove_dir(made);
                    }
                    return Err(e);
                }
            };
            if cli.json {
                writeln!(out, "{}", serde_json::to_string(&backup)?)?;
            } else {
                writeln!(
                    out,
                    "created {}",
                    settings.backups.join(&backup.filename).display()
                )?;
                write_details(out, &backup)?;
            }
        }
        Command::List => {
            let backups = settings
                .runtime()?
                .list()
                .map_err(|e| explain(e, None, &settings.backups))?;
            if cli.json {
                writeln!(out, "{}", serde_json::to_string(&backups)?)?;
            } else if backups.is_empty() {
                writeln!(out, "no backups in {dir}")?;
            } else {
                write_table(out, &backups)?;
            }
        }
        Command::Show { name } => {
            let backup = settings
                .runtime()?
                .read(name)
                .map_err(|e| explain(e, Some(name), &settings.backups))?;
            if cli.json {
                writeln!(out, "{}", serde_json::to_string(&backup)?)?;
            } else {
                write_details(out, &backup)?;
            }
        }
        Command::Exists { name } => {
            let exists = settings
                .runtime()?
                .exists(name)
                .map_err(|e| explain(e, Some(name), &settings.backups))?;
            if cli.json {
                writeln!(out, "{exists}")?;
            } else if exists {
                writeln!(out, "{name} exists")?;
            } else {
                writeln!(out, "{name} does not exist")?;
            }
            if !exists {
                return Ok(Outcome::No);
            }
        }
        Command::Serve(args) => serve(settings, args)?,
        Command::Verify { name, full } => {
            let verdict = settings
                .runtime()?
                .verify(name, *full)
                .map_err(|e| explain(e, Some(name), &settings.backups))?;
            if cli.json {
                writeln!(out, "{}", serde_json::to_string(&verdict)?)?;
            } else if verdict.verified && verdict.digests_recorded_now {
                writeln!(
                    out,
                    "{name}: OK ({} ok; no digests had been recorded for it, so they were recorded now)",
                    verdict.check
                )?;
            } else if verdict.verified {
                writeln!(out, "{name}: OK (digests match, {} ok)", verdict.check)?;
            } else {
                writeln!(out, "{name}: FAILED")?;
                for problem in &verdict.problems {
                    writeln!(out, "  - {problem}")?;
                }
            }
            if !verdict.verified {
                return Err(anyhow::anyhow!("{name} failed verification"));
            }
        }
        Command::Restore { name } => {
            let restoration = settings
                .runtime()?
                .restore(name)
                .map_err(|e| explain(e, Some(name), &settings.backups))?;
            if cli.json {
                writeln!(out, "{}", serde_json::to_string(&restoration)?)?;
            } else {
                writeln!(
                    out,
                    "restored {} into {}; its previous content is in {}",
                    restoration.restored.filename,
                    settings.database.display(),
                    settings
                        .backups
                        .join(&restoration.safety_backup.filename)
                        .display()
                )?;
            }
        }
        Command::Delete { name } => {
            settings
                .runtime()?
                .delete(name)
                .map_err(|e| explain(e, Some(name), &settings.backups))?;
            if !cli.json {
                writeln!(out, "deleted {name}")?;
            }
        }
    }
    Ok(Outcome::Done)
}

/// Runs the HTTP API until SIGINT or SIGTERM, then lets requests in flight finish.
fn serve(settings: &Settings, args: &ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_target(false)
        .init();
    let database = settings.live_database();
    if database.create_if_missing()? {
        tracing::info!(
            "created an empty database in WAL mode at {}",
            settings.database.display()
        );
    }
    let backups = BackupDir::create(&settings.backups).map_err(|e| {
        anyhow::anyhow!(
            "cannot create backup directory {}: {e}",
            settings.backups.display()
        )
    })?;
    let swept = backups.sweep_stale_temporaries()?;
    if swept > 0 {
        tracing::info!("removed {swept} temporary files left by an interrupted run");
    }
    let runtime = Runtime::from_policy(&settings.policy()?, Capabilities::new(database, backups));
    let timeout = Duration::from_millis(args.request_timeout_ms);
    let state = crate::http::ApiState::new(runtime, &args.admin_token)?.with_body_timeout(timeout);
    let app = crate::http::router(state);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
            tracing::info!(
                "listening on http://{} (database {}, backups in {})",
                listener.local_addr()?,
                settings.database.display(),
                settings.backups.display()
            );
            crate::http::serve(listener, app, timeout, shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Creates the backup directory and any missing parents; returns those it made, outermost
/// first.
fn ensure_directory(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
            anyhow::bail!("cannot create backup directory {}: {e}", dir.display());
        }
    }
    Ok(outermost_first)
}

/// One line a person can act on, naming what the error is about.
fn explain(error: Error, name: Option<&str>, backups: &Path) -> anyhow::Error {
    let dir = backups.display();
    let message = match (&error, name) {
        (Error::InvalidName(why), Some(name)) => format!("invalid backup name {name:?}: {why}"),
        (Error::NotFound, Some(name)) => format!("no backup named {name:?} in {dir}"),
        (Error::Exist, Some(name)) => {
            format!("a backup named {name:?} exists already in {dir}; it was left untouched")
        }
        (Error::Guest(why), _) => format!("internal error: the policy component failed: {why}"),
        _ => error.to_string(),
    };
    anyhow::Error::msg(message)
}

fn write_details(out: &mut impl Write, backup: &BackupFile) -> io::Result<()> {
    let rows = [
        ("Filename", backup.filename.clone()),
        (
            "Length",
            format!("{} bytes ({})", backup.length, human_size(backup.length)),
        ),
        ("MD5", backup.md5_hash.clone()),
        ("SHA-1", backup.sha1_hash.clone()),
        ("SHA-256", backup.sha256_hash.clone()),
        ("Created", backup.created_utc.to_string()),
        ("Last update", backup.last_update_utc.to_string()),
        ("Last access", backup.last_access_utc.to_string()),
    ];
    for (label, value) in rows {
        writeln!(out, "{label:<12} {value}")?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, backups: &[BackupFile]) -> io::Result<()> {
    let width = backups
        .iter()
        .map(|b| b.filename.chars().count())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    writeln!(
        out,
        "{:<width$}  {:>10}  {:<27}  SHA-256",
        "NAME", "SIZE", "CREATED (UTC)"
    )?;
    for b in backups {
        writeln!(
            out,
            "{:<width$}  {:>10}  {:<27}  {}",
            b.filename,
            human_size(b.length),
            b.created_utc.to_string(),
            b.sha256_hash
        )?;
    }
    let total: u64 = backups.iter().map(|b| b.length).sum();
    let count = backups.len();
    let noun = if count == 1 { "backup" } else { "backups" };
    writeln!(out, "{count} {noun}, {}", human_size(total))
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(352_256), "344.0 KiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
    }
}
