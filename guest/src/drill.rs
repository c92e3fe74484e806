//! What counts as a passing restore drill: the host restores a backup into a scratch
//! database and reports what it found ([`ScratchRestore`]); this module judges it.

use crate::litegraph::backup::types::{ScratchRestore, TableRows};

/// LiteGraph's tables: a backup that holds its core ones ([`LITEGRAPH_CORE`]) is a
/// LiteGraph database, and must hold them all.
pub const LITEGRAPH_TABLES: [&str; 9] = [
    "tenants", "users", "creds", "labels", "tags", "vectors", "graphs", "nodes", "edges",
];

/// The tables that make a database LiteGraph's: one of them alone (a `users` table) is
/// any application's.
pub const LITEGRAPH_CORE: [&str; 4] = ["tenants", "graphs", "nodes", "edges"];

/// The most integrity findings a drill reports (SQLite may find thousands).
const MOST_FINDINGS: usize = 5;

/// A drill's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the backup holds LiteGraph's schema.
    pub litegraph: bool,
    /// Every check that failed, one sentence each.
    pub problems: Vec<String>,
}

/// Judges what the host found restoring a backup whose recorded SHA-256 is `recorded`.
pub fn judge(recorded_sha256: &str, found: &ScratchRestore) -> Verdict {
    let mut problems = Vec::new();
    if !found.sha256.eq_ignore_ascii_case(recorded_sha256) {
        problems.push(format!(
            "the bytes restored are not those recorded when the backup was made (SHA-256 {}, recorded {recorded_sha256})",
            found.sha256
        ));
    }
    if !found.integrity.is_empty() {
        let shown: Vec<&str> = found
            .integrity
            .iter()
            .take(MOST_FINDINGS)
            .map(String::as_str)
            .collect();
        let more = found.integrity.len() - shown.len();
        let more = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        problems.push(format!(
            "integrity_check of the restored database: {}{more}",
            shown.join("; ")
        ));
    }
    for table in &found.tables {
        if let Some(problem) = row_count_problem(table) {
            problems.push(problem);
        }
    }
    let present = |name: &str| {
        found
            .tables
            .iter()
            .any(|table| table.name.eq_ignore_ascii_case(name))
    };
    let litegraph = LITEGRAPH_CORE.iter().all(|name| present(name));
    if litegraph {
        let missing: Vec<&str> = LITEGRAPH_TABLES
            .iter()
            .copied()
            .filter(|name| !present(name))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "LiteGraph's schema is incomplete: no table {}",
                missing.join(", ")
            ));
        }
    }
    Verdict {
        litegraph,
        problems,
    }
}

fn row_count_problem(table: &TableRows) -> Option<String> {
    let name = &table.name;
    match (table.in_backup, table.restored) {
        (Some(in_backup), Some(restored)) if restored == in_backup => None,
        (Some(in_backup), Some(restored)) => Some(format!(
            "table {name}: {in_backup} rows in the backup, {restored} once restored"
        )),
        (Some(in_backup), None) => Some(format!(
            "table {name}: {in_backup} rows in the backup, none readable once restored"
        )),
        (None, _) => Some(format!(
            "table {name}: its rows cannot be read in the backup (the table is damaged)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF";

    fn table(name: &str, in_backup: u64, restored: Option<u64>) -> TableRows {
        TableRows {
            name: name.into(),
            in_backup: Some(in_backup),
            restored,
        }
    }

    fn sound(tables: Vec<TableRows>) -> ScratchRestore {
        ScratchRestore {
            sha256: SHA.into(),
            integrity: vec![],
            tables,
        }
    }

    fn litegraph(rows: u64) -> Vec<TableRows> {
        LITEGRAPH_TABLES
            .iter()
            .map(|name| table(name, rows, Some(rows)))
            .collect()
    }

    #[test]
    fn a_sound_litegraph_restore_passes() {
        let verdict = judge(SHA, &sound(litegraph(3)));
        assert_eq!(
            verdict,
            Verdict {
                litegraph: true,
                problems: vec![]
            }
        );
    }

    #[test]
    fn a_database_without_litegraph_tables_is_judged_on_its_own_tables() {
        let verdict = judge(SHA, &sound(vec![table("kept", 1, Some(1))]));
        assert!(!verdict.litegraph);
        assert!(verdict.problems.is_empty());
        // An empty database (LiteGraph before its first start) too.
        assert!(judge(SHA, &sound(vec![])).problems.is_empty());
    }

    #[test]
    fn other_bytes_fail() {
        let verdict = judge(&SHA.to_lowercase(), &sound(vec![]));
        assert!(verdict.problems.is_empty(), "hex case is not a difference");
        let verdict = judge(&"0".repeat(64), &sound(vec![]));
        assert_eq!(verdict.problems.len(), 1);
        assert!(verdict.problems[0].contains("not those recorded"));
    }

    #[test]
    fn integrity_findings_fail_and_are_shortened() {
        let mut found = sound(vec![]);
        found.integrity = (1..=8).map(|n| format!("finding {n}")).collect();
        let verdict = judge(SHA, &found);
        assert_eq!(
            verdict.problems,
            vec![
                "integrity_check of the restored database: finding 1; finding 2; finding 3; \
                 finding 4; finding 5 (and 3 more)"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn rows_lost_or_unreadable_fail() {
        let mut tables = litegraph(2);
        tables[7] = table("nodes", 10, Some(9));
        tables[8] = table("edges", 4, None);
        tables[6].in_backup = None;
        let verdict = judge(SHA, &sound(tables));
        assert_eq!(
            verdict.problems,
            vec![
                "table graphs: its rows cannot be read in the backup (the table is damaged)"
                    .to_owned(),
                "table nodes: 10 rows in the backup, 9 once restored".to_owned(),
                "table edges: 4 rows in the backup, none readable once restored".to_owned(),
            ]
        );
        // A damaged table is still there: LiteGraph's schema is complete.
        assert!(verdict.litegraph);
    }

    #[test]
    fn a_litegraph_backup_missing_tables_fails() {
        let tables: Vec<TableRows> = litegraph(1)
            .into_iter()
            .filter(|t| t.name != "vectors" && t.name != "creds")
            .collect();
        let verdict = judge(SHA, &sound(tables));
        assert!(verdict.litegraph);
        assert_eq!(
            verdict.problems,
            vec!["LiteGraph's schema is incomplete: no table creds, vectors".to_owned()]
        );
    }

    // Found by the operator review: a database of another application with a `users` or
    // `graphs` table failed every drill as an incomplete LiteGraph database.
    #[test]
    fn one_of_litegraph_s_table_names_does_not_make_a_litegraph_database() {
        for name in ["users", "graphs", "nodes"] {
            let verdict = judge(SHA, &sound(vec![table(name, 2, Some(2))]));
            assert!(!verdict.litegraph, "{name}");
            assert!(
                verdict.problems.is_empty(),
                "{name}: {:?}",
                verdict.problems
            );
        }
    }
}
