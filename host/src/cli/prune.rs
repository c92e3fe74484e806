//! `prune`: the policy decides, for every backup, keep or remove and why (restic's `forget`
//! rules); this prints the decisions and says whether every removal went through.

use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

use super::commands::{Operation, explain, no_backups_yet, runtime};
use super::output::{human_size, pad_to_cells};
use super::{Exit, Failure};
use crate::config::Config;
use crate::{PruneDecision, Retention};

/// Why a prune without a rule is refused before anything is read.
pub const NO_RULE: &str = "no retention rule given: give at least one of --keep-last, \
     --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within \
     (or LITEGRAPH_KEEP_*, or [retention] in the --config file); a prune without a rule would \
     remove every backup";

/// Applies `rules` (or only decides, when `dry_run`), prints the decisions and answers
/// [`Exit::Failed`] when a removal failed (the others went on).
pub fn prune(
    config: &Config,
    rules: &Retention,
    dry_run: bool,
    out: &mut impl Write,
) -> anyhow::Result<Exit> {
    if rules.is_empty() {
        return Err(Failure::error(Exit::Refused, NO_RULE));
    }
    let decisions = if no_backups_yet(config) {
        Vec::new()
    } else {
        runtime(config)?
            .prune(rules, dry_run)
            .map_err(|e| explain(e, &Operation::Prune, config))?
    };
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&decisions)?)?;
    } else if !config.quiet {
        write_decisions(out, &decisions, dry_run)?;
    }
    let place = config.backups.path.display().to_string();
    match failed_removals(&decisions, &place) {
        Some(failure) => Err(failure),
        None => Ok(Exit::Success),
    }
}

/// The error of a prune whose removals did not all go through: each one that failed, and
/// why; `None` when none did.
pub(super) fn failed_removals(decisions: &[PruneDecision], place: &str) -> Option<anyhow::Error> {
    let failed: Vec<String> = decisions
        .iter()
        .filter_map(|d| {
            let why = d.removal_failed.as_ref()?;
            Some(format!("{}: {why}", d.backup.filename))
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    let removed = decisions.iter().filter(|d| !d.keep).count() - failed.len();
    Some(Failure::error(
        Exit::Failed,
        format!(
            "{} of {} removals in {place} failed (the other {removed} went through): {}",
            failed.len(),
            failed.len() + removed,
            failed.join("; ")
        ),
    ))
}

/// What happens to one backup, as the table's ACTION column says it.
fn action(decision: &PruneDecision, dry_run: bool) -> &'static str {
    match (decision.keep, &decision.removal_failed, dry_run) {
        (true, _, _) => "keep",
        (false, Some(_), _) => "FAILED",
        (false, None, true) => "would remove",
        (false, None, false) => "removed",
    }
}

pub(super) fn write_decisions(
    out: &mut impl Write,
    decisions: &[PruneDecision],
    dry_run: bool,
) -> io::Result<()> {
    if decisions.is_empty() {
        return writeln!(out, "no backups to prune");
    }
    let width = decisions
        .iter()
        .map(|d| d.backup.filename.width())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    writeln!(
        out,
        "{}  {:<27}  {:<12}  WHY",
        pad_to_cells("NAME", width),
        "CREATED (UTC)",
        "ACTION"
    )?;
    for decision in decisions {
        let mut why = decision.reasons.join(", ");
        if let Some(failure) = &decision.removal_failed {
            why = format!("{why}; removal failed: {failure}");
        }
        writeln!(
            out,
            "{}  {:<27}  {:<12}  {why}",
            pad_to_cells(&decision.backup.filename, width),
            decision.backup.created_utc.to_string(),
            action(decision, dry_run),
        )?;
    }
    writeln!(out, "{}", summary(decisions, dry_run))
}

/// `5 kept, 3 removed (1.2 MiB)`, or what a dry run would do.
fn summary(decisions: &[PruneDecision], dry_run: bool) -> String {
    let kept = decisions.iter().filter(|d| d.keep).count();
    let gone: Vec<&PruneDecision> = decisions
        .iter()
        .filter(|d| !d.keep && d.removal_failed.is_none())
        .collect();
    let failed = decisions.len() - kept - gone.len();
    let bytes = human_size(gone.iter().map(|d| d.backup.length).sum());
    let verb = if dry_run {
        "would be removed"
    } else {
        "removed"
    };
    let mut line = format!("{kept} kept, {} {verb} ({bytes})", gone.len());
    if failed > 0 {
        line.push_str(&format!(", {failed} could not be removed"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackupFile;
    use crate::wire::Timestamp;

    fn decision(name: &str, keep: bool, failed: Option<&str>) -> PruneDecision {
        PruneDecision {
            backup: BackupFile {
                filename: name.into(),
                length: 4096,
                md5_hash: String::new(),
                sha1_hash: String::new(),
                sha256_hash: String::new(),
                created_utc: Timestamp::from_unix(1_748_316_670, 0),
                last_update_utc: Timestamp::from_unix(1_748_316_670, 0),
                last_access_utc: Timestamp::from_unix(1_748_316_670, 0),
            },
            keep,
            reasons: vec![if keep { "last 1" } else { "no rule keeps it" }.into()],
            removal_failed: failed.map(Into::into),
        }
    }

    #[test]
    fn a_failed_removal_exits_6_and_names_it() {
        let decisions = [
            decision("a.db", false, Some("cannot remove: Is a directory")),
            decision("b.db", false, None),
            decision("c.db", true, None),
        ];
        let failure = failed_removals(&decisions, "/b").expect("a failure");
        let failure = failure
            .downcast_ref::<Failure>()
            .expect("with its exit status");
        assert_eq!(failure.exit, Exit::Failed);
        assert!(
            failure.message.contains("1 of 2 removals in /b failed"),
            "{}",
            failure.message
        );
        assert!(
            failure
                .message
                .contains("a.db: cannot remove: Is a directory")
        );
        assert!(failed_removals(&decisions[1..], "/b").is_none());
    }

    #[test]
    fn the_table_says_what_happened_to_each_backup() {
        let decisions = [
            decision("a.db", false, Some("busy")),
            decision("b.db", false, None),
            decision("c.db", true, None),
        ];
        let mut out = Vec::new();
        write_decisions(&mut out, &decisions, false).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.contains("FAILED"), "{text}");
        assert!(text.contains("removal failed: busy"), "{text}");
        assert!(text.contains("removed"), "{text}");
        assert!(
            text.ends_with("1 kept, 1 removed (4.0 KiB), 1 could not be removed\n"),
            "{text}"
        );

        let mut out = Vec::new();
        write_decisions(&mut out, &decisions[1..], true).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.contains("would remove"), "{text}");
        assert!(
            text.ends_with("1 kept, 1 would be removed (4.0 KiB)\n"),
            "{text}"
        );
    }
}
