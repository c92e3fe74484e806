//! What people read: a backup's details, the list as a table that fits a terminal (widths
//! in terminal cells, long names and digests shortened), sizes in binary units.

use std::io::{self, Write};

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::wire::TableRows;
use crate::{BackupDetails, BackupFile, Drill, LastCheck};

/// The widest a name column gets without `--wide`, in terminal cells.
const NAME_CELLS: usize = 40;
/// Hex digits of a digest shown without `--wide`.
const DIGEST_DIGITS: usize = 12;
const ELLIPSIS: char = '…';

/// How the table is drawn.
#[derive(Debug, Clone, Copy)]
pub struct TableStyle {
    /// Full names and digests, however wide.
    pub wide: bool,
}

/// Everything in the backup directory that the table's last line sums up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Backups in the directory (the table may show fewer).
    pub count: usize,
    pub bytes: u64,
    /// Temporaries left by interrupted runs (or in use right now): count and bytes.
    pub leftovers: (usize, u64),
}

pub fn write_details(out: &mut impl Write, backup: &BackupFile) -> io::Result<()> {
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

/// What `show` adds to a backup's details: how it came to be and its last checks.
pub fn write_checks(out: &mut impl Write, details: &BackupDetails) -> io::Result<()> {
    let origin = match details.origin.as_str() {
        "default-name" => "default name (made without one, by a person or the schedule)",
        "safety-backup" => "safety backup (a restore's copy of what it replaced)",
        "named" => "named by a person",
        other => other,
    };
    writeln!(out, "{:<12} {origin}", "Origin")?;
    writeln!(
        out,
        "{:<12} {}",
        "Last verify",
        last_check(&details.last_verify)
    )?;
    writeln!(
        out,
        "{:<12} {}",
        "Last drill",
        last_check(&details.last_drill)
    )
}

/// "2025-05-27T03:31:10.904886Z, passed in 1.2 s", or "never".
fn last_check(check: &Option<LastCheck>) -> String {
    let Some(check) = check else {
        return "never".to_owned();
    };
    let verdict = if check.passed { "passed" } else { "FAILED" };
    let mut line = format!("{}, {verdict}", check.at);
    if let Some(milliseconds) = check.milliseconds {
        line.push_str(&format!(" in {}", human_duration(milliseconds)));
    }
    if !check.summary.is_empty() {
        line.push_str(&format!(": {}", check.summary));
    }
    line
}

/// Tables a drill's report lists one by one; past this, only those whose count differs.
const TABLES_LISTED: usize = 20;

/// A drill's report: the verdict, LiteGraph's schema, the tables and their rows, and each
/// problem.
pub fn write_drill(out: &mut impl Write, drill: &Drill) -> io::Result<()> {
    let verdict = if drill.passed { "PASSED" } else { "FAILED" };
    writeln!(
        out,
        "{}: drill {verdict} in {}",
        drill.backup.filename,
        human_duration(drill.milliseconds)
    )?;
    writeln!(out, "{:<12} {}", "Started", drill.started_utc)?;
    let schema = if drill.litegraph {
        "present"
    } else {
        "absent (none of LiteGraph's tables)"
    };
    writeln!(out, "{:<12} {schema}", "LiteGraph")?;
    write_tables(out, &drill.tables)?;
    if !drill.problems.is_empty() {
        writeln!(out, "Problems")?;
        for problem in &drill.problems {
            writeln!(out, "  - {problem}")?;
        }
    }
    Ok(())
}

/// The tables a drill counted: a summary line, then each table (all when few, only those
/// whose count differs when many) with its rows in the backup and, when different, once
/// restored.
fn write_tables(out: &mut impl Write, tables: &[TableRows]) -> io::Result<()> {
    let differs = |t: &&TableRows| t.in_backup.is_none() || t.restored != t.in_backup;
    let differing = tables.iter().filter(differs).count();
    let rows: u64 = tables.iter().filter_map(|t| t.in_backup).sum();
    let noun = if tables.len() == 1 { "table" } else { "tables" };
    let same = match differing {
        0 => "every count the same once restored".to_owned(),
        n => format!("{n} different once restored"),
    };
    if tables.is_empty() {
        return writeln!(out, "{:<12} none counted", "Tables");
    }
    writeln!(
        out,
        "{:<12} {} {noun}, {rows} rows in the backup, {same}",
        "Tables",
        tables.len()
    )?;
    let listed: Vec<&TableRows> = if tables.len() <= TABLES_LISTED {
        tables.iter().collect()
    } else {
        tables.iter().filter(differs).collect()
    };
    let names: Vec<String> = listed
        .iter()
        .map(|t| truncate_to_cells(&t.name, NAME_CELLS))
        .collect();
    let width = names.iter().map(|n| n.width()).max().unwrap_or(0);
    let digits = listed
        .iter()
        .map(|t| t.in_backup.map_or(1, |rows| rows.to_string().len()))
        .max()
        .unwrap_or(1);
    for (table, name) in listed.iter().zip(&names) {
        let restored = match (table.in_backup, table.restored) {
            (Some(in_backup), Some(rows)) if rows == in_backup => String::new(),
            (_, Some(rows)) => format!("  {rows} once restored"),
            (_, None) => "  unreadable once restored".to_owned(),
        };
        let in_backup = table
            .in_backup
            .map_or_else(|| "?".to_owned(), |rows| rows.to_string());
        writeln!(
            out,
            "  {}  {in_backup:>digits$}{restored}{}",
            pad_to_cells(name, width),
            if table.in_backup.is_none() {
                "  (unreadable in the backup)"
            } else {
                ""
            }
        )?;
    }
    if listed.len() < tables.len() {
        writeln!(
            out,
            "  ({} more, each the same once restored)",
            tables.len() - listed.len()
        )?;
    }
    Ok(())
}

/// "850 ms", "12.3 s", "4 min 5 s".
pub fn human_duration(milliseconds: u64) -> String {
    match milliseconds {
        0..1_000 => format!("{milliseconds} ms"),
        1_000..60_000 => format!("{:.1} s", milliseconds as f64 / 1000.0),
        _ => format!(
            "{} min {} s",
            milliseconds / 60_000,
            milliseconds % 60_000 / 1000
        ),
    }
}

pub fn write_table(
    out: &mut impl Write,
    backups: &[BackupFile],
    style: TableStyle,
    totals: Totals,
) -> io::Result<()> {
    let names: Vec<String> = backups
        .iter()
        .map(|b| match style.wide {
            true => b.filename.clone(),
            false => truncate_to_cells(&b.filename, NAME_CELLS),
        })
        .collect();
    let width = names
        .iter()
        .map(|n| n.width())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    writeln!(
        out,
        "{}  {:>10}  {:<27}  SHA-256",
        pad_to_cells("NAME", width),
        "SIZE",
        "CREATED (UTC)"
    )?;
    for (backup, name) in backups.iter().zip(&names) {
        let digest = match style.wide {
            true => backup.sha256_hash.clone(),
            false => shorten_digest(&backup.sha256_hash),
        };
        writeln!(
            out,
            "{}  {:>10}  {:<27}  {digest}",
            pad_to_cells(name, width),
            human_size(backup.length),
            backup.created_utc.to_string(),
        )?;
    }
    writeln!(out, "{}", totals_line(backups.len(), totals))
}

/// "3 backups, 1.2 GiB", with how many are shown when fewer, and leftover temporaries.
fn totals_line(shown: usize, totals: Totals) -> String {
    let noun = |n: usize, one: &str, many: &str| {
        if n == 1 {
            one.to_owned()
        } else {
            many.to_owned()
        }
    };
    let mut line = format!(
        "{} {}, {}",
        totals.count,
        noun(totals.count, "backup", "backups"),
        human_size(totals.bytes)
    );
    if shown < totals.count {
        line.push_str(&format!(" ({shown} shown)"));
    }
    let (count, bytes) = totals.leftovers;
    if count > 0 {
        line.push_str(&format!(
            "; {count} {} of interrupted or running operations, {}",
            noun(count, "temporary file", "temporary files"),
            human_size(bytes)
        ));
    }
    line
}

/// Cuts `text` to at most `cells` terminal cells, ending in an ellipsis when cut (CJK and
/// most emoji take two cells, combining marks none).
pub fn truncate_to_cells(text: &str, cells: usize) -> String {
    if text.width() <= cells {
        return text.to_owned();
    }
    let room = cells.saturating_sub(ELLIPSIS.width().unwrap_or(1));
    let mut kept = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        kept.push(c);
    }
    kept.push(ELLIPSIS);
    kept
}

/// Pads with spaces to `cells` terminal cells (`format!`'s width counts chars, not cells).
pub fn pad_to_cells(text: &str, cells: usize) -> String {
    let padding = cells.saturating_sub(text.width());
    format!("{text}{}", " ".repeat(padding))
}

/// The first hex digits of a digest, enough to tell backups apart by eye.
fn shorten_digest(hex: &str) -> String {
    match hex.get(..DIGEST_DIGITS) {
        Some(start) if hex.len() > DIGEST_DIGITS => format!("{start}{ELLIPSIS}"),
        _ => hex.to_owned(),
    }
}

pub fn human_size(bytes: u64) -> String {
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

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(352_256), "344.0 KiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
    }

    #[test]
    fn truncation_counts_terminal_cells() {
        assert_eq!(truncate_to_cells("short.db", 10), "short.db");
        assert_eq!(truncate_to_cells("abcdefghijk.db", 10), "abcdefghi…");
        // Each of these takes two cells: four fit beside the ellipsis in ten.
        let cut = truncate_to_cells("日本語のバックアップ.db", 10);
        assert_eq!(cut, "日本語の…");
        assert!(cut.width() <= 10);
        let emoji = truncate_to_cells("🦀🦀🦀🦀🦀🦀.db", 7);
        assert_eq!(emoji, "🦀🦀🦀…");
    }

    #[test]
    fn padding_counts_terminal_cells() {
        assert_eq!(pad_to_cells("日本", 6), "日本  ");
        assert_eq!(pad_to_cells("ab", 4), "ab  ");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(0), "0 ms");
        assert_eq!(human_duration(999), "999 ms");
        assert_eq!(human_duration(1_250), "1.2 s");
        assert_eq!(human_duration(245_000), "4 min 5 s");
    }

    fn drill(tables: Vec<TableRows>, problems: Vec<String>) -> Drill {
        let at = crate::wire::Timestamp::from_unix(1_748_316_670, 904_886_000);
        Drill {
            passed: problems.is_empty(),
            problems,
            backup: BackupFile {
                filename: "nightly.db".into(),
                length: 4096,
                md5_hash: String::new(),
                sha1_hash: String::new(),
                sha256_hash: String::new(),
                created_utc: at,
                last_update_utc: at,
                last_access_utc: at,
            },
            started_utc: at,
            milliseconds: 1_250,
            litegraph: true,
            tables,
        }
    }

    fn rows(name: &str, in_backup: u64, restored: Option<u64>) -> TableRows {
        let in_backup = Some(in_backup);
        TableRows {
            name: name.into(),
            in_backup,
            restored,
        }
    }

    fn drawn(drill: &Drill) -> String {
        let mut out = Vec::new();
        write_drill(&mut out, drill).expect("write to memory");
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn a_drill_report_lists_few_tables_and_each_problem() {
        let report = drawn(&drill(
            vec![
                rows("edges", 200, Some(200)),
                rows("nodes", 1500, Some(1499)),
            ],
            vec!["table nodes: 1500 rows in the backup, 1499 once restored".into()],
        ));
        assert_eq!(
            report,
            "nightly.db: drill FAILED in 1.2 s\n\
             Started      2025-05-27T03:31:10.904886Z\n\
             LiteGraph    present\n\
             Tables       2 tables, 1700 rows in the backup, 1 different once restored\n\
             \x20 edges   200\n\
             \x20 nodes  1500  1499 once restored\n\
             Problems\n\
             \x20 - table nodes: 1500 rows in the backup, 1499 once restored\n"
        );
    }

    #[test]
    fn a_drill_report_of_many_tables_lists_only_those_that_differ() {
        let mut tables: Vec<TableRows> = (0..30)
            .map(|n| rows(&format!("t{n:02}"), 1, Some(1)))
            .collect();
        tables[7].restored = None;
        let report = drawn(&drill(tables, vec!["t07".into()]));
        assert!(
            report.contains("30 tables, 30 rows in the backup, 1 different once restored"),
            "{report}"
        );
        assert!(
            report.contains("  t07  1  unreadable once restored\n"),
            "{report}"
        );
        assert!(
            report.contains("  (29 more, each the same once restored)\n"),
            "{report}"
        );
        assert!(!report.contains("t08"), "{report}");
    }

    #[test]
    fn digests_are_shortened_to_twelve_digits() {
        let hex = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
        assert_eq!(shorten_digest(hex), "0123456789AB…");
    }
}
