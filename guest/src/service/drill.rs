//! `drill` and `details`: a restore tested in a scratch database, its outcome recorded with
//! the backup, and what is recorded shown.

use super::{Host, Service, backup_file, check};
use crate::drill::judge;
use crate::litegraph::backup::types::{
    BackupDetails, Datetime, DrillReport, Error, LastCheck, TableRows,
};
use crate::metadata::{LastDrill, sidecar_name};

impl<H: Host> Service<H> {
    /// Drills `name`, or the newest backup (the last of `list`): the host restores it into
    /// a scratch database and reports what it found, which [`judge`] turns into problems.
    /// A file the host cannot restore at all (`corrupt`) is a failed drill, not an error:
    /// that is what a drill is for. The outcome is recorded in the backup's sidecar.
    pub fn drill(&self, name: Option<&str>) -> Result<DrillReport, Error> {
        let record = match name {
            Some(name) => {
                check(name)?;
                self.record(name)?
            }
            None => self.catalogue()?.pop().ok_or(Error::NotFound)?,
        };
        let name = record.metadata.filename.clone();
        let at = self.host.now();
        let (tables, litegraph, problems) = match self.host.drill(&name) {
            Ok(found) => {
                let verdict = judge(&record.metadata.digests.sha256, &found);
                (found.tables, verdict.litegraph, verdict.problems)
            }
            Err(Error::Corrupt(why)) => (
                Vec::<TableRows>::new(),
                false,
                vec![format!("the backup could not be restored: {why}")],
            ),
            Err(error) => return Err(error),
        };
        let milliseconds = elapsed_ms(at, self.host.now());
        let mut metadata = record.metadata;
        metadata.last_drill = Some(LastDrill::new(at, milliseconds, &problems));
        // Best effort: the verdict stands either way; an outcome not recorded only means
        // that `show` and `status` do not know of this drill.
        let _ = self.host.write(&sidecar_name(&name), &metadata.encode());
        Ok(DrillReport {
            backup: backup_file(metadata, &record.stat),
            at,
            milliseconds,
            tables,
            litegraph,
            problems,
        })
    }

    /// A backup's metadata with its origin and the outcomes of its last verify and drill.
    pub fn details(&self, name: &str) -> Result<BackupDetails, Error> {
        check(name)?;
        let record = self.record(name)?;
        let metadata = record.metadata;
        let last_verify = metadata.last_verification.map(|v| LastCheck {
            at: v.at,
            passed: v.passed,
            milliseconds: None,
            summary: String::new(),
        });
        let last_drill = metadata.last_drill.clone().map(|d| LastCheck {
            at: d.at,
            passed: d.passed,
            milliseconds: Some(d.milliseconds),
            summary: d.summary,
        });
        let origin = metadata.origin.label().to_owned();
        Ok(BackupDetails {
            backup: backup_file(metadata, &record.stat),
            origin,
            last_verify,
            last_drill,
        })
    }
}

/// Milliseconds from `from` to `to`; 0 when the clock went back.
fn elapsed_ms(from: Datetime, to: Datetime) -> u64 {
    let nanos = |t: Datetime| u128::from(t.seconds) * 1_000_000_000 + u128::from(t.nanoseconds);
    let elapsed = nanos(to).saturating_sub(nanos(from)) / 1_000_000;
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeHost;
    use super::*;
    use crate::drill::LITEGRAPH_TABLES;

    fn litegraph_tables(rows: u64) -> Vec<TableRows> {
        LITEGRAPH_TABLES
            .iter()
            .map(|name| TableRows {
                name: (*name).into(),
                in_backup: Some(rows),
                restored: Some(rows),
            })
            .collect()
    }

    #[test]
    fn a_drill_defaults_to_the_newest_backup_and_records_its_outcome() {
        let host = FakeHost::with_database(b"SQLite one");
        let service = Service::new(&host);
        service.create(Some("b-older.db".into())).unwrap();
        *host.database.borrow_mut() = b"SQLite two".to_vec();
        service.create(Some("a-newer.db".into())).unwrap();
        *host.drill_tables.borrow_mut() = litegraph_tables(4);
        host.take_calls();
        let drill = service.drill(None).unwrap();
        assert_eq!(drill.backup.filename, "a-newer.db");
        assert!(drill.litegraph);
        assert!(drill.problems.is_empty(), "{:?}", drill.problems);
        assert_eq!(drill.tables.len(), 9);
        assert!(host.take_calls().contains(&"drill a-newer.db".to_owned()));
        let details = service.details("a-newer.db").unwrap();
        let last = details.last_drill.expect("the drill is recorded");
        assert!(last.passed);
        assert_eq!(last.at, drill.at);
        assert_eq!(last.milliseconds, Some(drill.milliseconds));
        assert_eq!(details.origin, "named");
        assert_eq!(details.last_verify, None);
        assert_eq!(service.details("b-older.db").unwrap().last_drill, None);
    }

    #[test]
    fn a_tampered_backup_fails_its_drill_and_the_failure_is_recorded() {
        let host = FakeHost::with_database(b"SQLite content");
        let service = Service::new(&host);
        service.create(Some("x.db".into())).unwrap();
        // Changed in place: same birth time, other bytes.
        host.files.borrow_mut().get_mut("x.db").unwrap().bytes = b"SQLite tampered".to_vec();
        let drill = service.drill(Some("x.db")).unwrap();
        assert_eq!(drill.problems.len(), 1, "{:?}", drill.problems);
        assert!(drill.problems[0].contains("not those recorded"));
        let last = service.details("x.db").unwrap().last_drill.unwrap();
        assert!(!last.passed);
        assert!(
            last.summary.contains("not those recorded"),
            "{}",
            last.summary
        );
    }

    #[test]
    fn a_backup_the_host_cannot_restore_is_a_failed_drill_not_an_error() {
        let host = FakeHost::with_database(b"SQLite");
        let service = Service::new(&host);
        host.put("garbage.db", b"not a database at all");
        let drill = service.drill(Some("garbage.db")).unwrap();
        assert_eq!(
            drill.problems,
            ["the backup could not be restored: not a database: its header is not SQLite's"]
        );
        assert!(
            !service
                .details("garbage.db")
                .unwrap()
                .last_drill
                .unwrap()
                .passed
        );
    }

    #[test]
    fn a_drill_needs_a_backup() {
        let host = FakeHost::with_database(b"SQLite");
        let service = Service::new(&host);
        assert_eq!(service.drill(None), Err(Error::NotFound));
        assert_eq!(service.drill(Some("missing.db")), Err(Error::NotFound));
        assert!(matches!(
            service.drill(Some("../x.db")),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(
            service.details("../x.db"),
            Err(Error::InvalidName(_))
        ));
        assert!(host.take_calls().iter().all(|c| !c.starts_with("drill")));
    }

    #[test]
    fn a_verify_shows_in_the_details() {
        let host = FakeHost::with_database(b"SQLite");
        let service = Service::new(&host);
        service.create(None).unwrap();
        let name = service.list().unwrap()[0].filename.clone();
        service.verify(&name, false).unwrap();
        let details = service.details(&name).unwrap();
        assert!(details.last_verify.unwrap().passed);
        assert_eq!(details.origin, "default-name");
    }

    #[test]
    fn elapsed_time_never_underflows() {
        let at = |seconds, nanoseconds| Datetime {
            seconds,
            nanoseconds,
        };
        assert_eq!(elapsed_ms(at(10, 500_000_000), at(12, 0)), 1500);
        assert_eq!(elapsed_ms(at(12, 0), at(10, 0)), 0);
    }
}
