//! `drill`: a restore tested in a scratch database, never the live one.

use std::io::Write;

use super::commands::{Operation, explain, resolve, runtime};
use super::output::write_drill;
use super::{Exit, Failure};
use crate::Error;
use crate::config::Config;

/// Drills backup `name` (`latest`, or none: the newest): exit 0 when it passes, 4
/// ([`Exit::Damaged`]) when it fails, the usual statuses when it cannot be run.
pub(super) fn drill(
    config: &Config,
    name: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<Exit> {
    let runtime = runtime(config)?;
    super::interrupt::remove_temporaries_on_interrupt(
        "the drill stopped before its end; the live database was never touched".to_owned(),
        config.backups.path.clone(),
    )?;
    // `latest` is resolved here, as for `verify`; no name at all is the policy's to pick.
    let name = name
        .map(|name| resolve(&runtime, name, config))
        .transpose()?;
    let drill = runtime
        .drill(name.as_deref())
        .map_err(|e| match (&e, &name) {
            (Error::NotFound, None) => Failure::error(
                Exit::NotFound,
                format!(
                    "no backups in {} to drill (`create` makes one)",
                    config.backups.path.display()
                ),
            ),
            _ => explain(e, &Operation::Drill(name.as_deref()), config),
        })?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&drill)?)?;
    } else if !config.quiet {
        write_drill(out, &drill)?;
    }
    if !drill.passed {
        let problems = drill.problems.len();
        return Err(Failure::error(
            Exit::Damaged,
            format!(
                "{} in {} failed its restore drill ({problems} problem{})",
                drill.backup.filename,
                config.backups.path.display(),
                if problems == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(Exit::Success)
}
