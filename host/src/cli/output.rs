//! What people read: a backup's details, the list as a table that fits a terminal (widths
//! in terminal cells, long names and digests shortened), sizes in binary units.

use std::io::{self, Write};

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::BackupFile;

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
    fn digests_are_shortened_to_twelve_digits() {
        let hex = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
        assert_eq!(shorten_digest(hex), "0123456789AB…");
    }
}
