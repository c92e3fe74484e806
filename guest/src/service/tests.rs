//! The policy's decisions, run against the in-memory host.

use super::fake::FakeHost;
use super::*;

#[test]
fn create_publishes_the_snapshot_with_metadata() {
    let host = FakeHost::with_database(b"SQLite format 3\0 pages");
    let service = Service::new(&host);
    let backup = service.create(Some("x.db".into())).unwrap();
    assert_eq!(backup.filename, "x.db");
    assert_eq!(backup.length, 22);
    assert_eq!(
        host.files.borrow()["x.db"].bytes,
        b"SQLite format 3\0 pages"
    );
    assert_eq!(host.names(), vec![sidecar_name("x.db"), "x.db".to_owned()]);
    assert_eq!(service.read("x.db").unwrap(), backup);
}

#[test]
fn create_refuses_existing_name_without_taking_a_snapshot() {
    let host = FakeHost::with_database(b"new");
    host.put("x.db", b"old");
    let service = Service::new(&host);
    assert_eq!(service.create(Some("x.db".into())), Err(Error::Exist));
    assert_eq!(host.names(), vec!["x.db".to_owned()]);
    assert_eq!(host.files.borrow()["x.db"].bytes, b"old");
}

#[test]
fn create_refuses_invalid_names_and_touches_nothing() {
    let host = FakeHost::with_database(b"db");
    let service = Service::new(&host);
    for name in [
        "../x.db",
        "..",
        "/etc/passwd",
        "a/b.db",
        "a\\b.db",
        "a\0",
        "a\n",
        ".x",
    ] {
        let result = service.create(Some(name.into()));
        assert!(matches!(result, Err(Error::InvalidName(_))), "{name:?}");
    }
    assert!(host.names().is_empty());
}

#[test]
fn default_names_never_collide() {
    let host = FakeHost::with_database(b"db");
    let service = Service::new(&host);
    let first = service.create(None).unwrap();
    host.clock.set(1_748_316_670);
    let second = service.create(None).unwrap();
    assert_eq!(first.filename, "litegraph-backup-20250527-033110.db");
    assert_eq!(second.filename, "litegraph-backup-20250527-033110-2.db");
}

#[test]
fn failed_metadata_write_leaves_nothing_behind() {
    let host = FakeHost::with_database(b"db");
    host.fail_writes.set(true);
    let service = Service::new(&host);
    assert!(matches!(
        service.create(Some("x.db".into())),
        Err(Error::Io(_))
    ));
    // The temporary is the host's to discard; no backup or sidecar remains.
    assert!(host.names().iter().all(|n| n.ends_with(".tmp")));
}

#[test]
fn list_hides_internal_files_and_never_rehashes() {
    let host = FakeHost::with_database(b"db");
    let service = Service::new(&host);
    service.create(Some("b.db".into())).unwrap();
    service.create(Some("a.db".into())).unwrap();
    host.put(".lgb-123.tmp", b"partial");
    host.put("bad\nname", b"?");
    let hashed = host.hashed.get();
    for _ in 0..3 {
        let names: Vec<_> = service
            .list()
            .unwrap()
            .into_iter()
            .map(|b| b.filename)
            .collect();
        assert_eq!(names, ["b.db", "a.db"], "oldest first");
    }
    assert_eq!(host.hashed.get(), hashed);
}

/// The names `list` answers, in its order.
fn listed(service: &Service<&FakeHost>) -> Vec<String> {
    service
        .list()
        .unwrap()
        .into_iter()
        .map(|backup| backup.filename)
        .collect()
}

// Item 3: list sorted by name bytes, so `...-10.db` came before `...-2.db` and the first
// backup of a second came last.
#[test]
fn list_is_in_order_of_creation_not_of_name() {
    let host = FakeHost::with_database(b"SQLite");
    let service = Service::new(&host);
    let made: Vec<String> = (0..11)
        .map(|_| {
            let backup = service.create(None).unwrap();
            // Ten more in the same second: numbered `-2` to `-11`.
            host.clock.set(1_748_316_670);
            backup.filename
        })
        .collect();
    assert_eq!(made[1], "litegraph-backup-20250527-033110-2.db");
    assert_eq!(made[9], "litegraph-backup-20250527-033110-10.db");
    assert_eq!(listed(&service), made);
}

#[test]
fn backups_made_in_the_same_instant_are_listed_by_name() {
    let host = FakeHost::with_database(b"SQLite");
    for name in ["c.db", "a.db", "b.db"] {
        host.put(name, b"SQLite copied in");
        host.files.borrow_mut().get_mut(name).unwrap().birth = 7;
    }
    host.put("older.db", b"SQLite copied in");
    host.files.borrow_mut().get_mut("older.db").unwrap().birth = 6;
    let service = Service::new(&host);
    assert_eq!(listed(&service), ["older.db", "a.db", "b.db", "c.db"]);
}

proptest::proptest! {
    /// Whatever the names and times, `list` answers every backup once, oldest first, then
    /// by name.
    #[test]
    fn list_is_oldest_first_then_by_name(
        births in proptest::collection::btree_map("[a-z0-9-]{1,12}\\.db", 0u64..5, 0..12),
    ) {
        let host = FakeHost::with_database(b"SQLite");
        for (name, birth) in &births {
            host.put(name, b"SQLite copied in");
            host.files.borrow_mut().get_mut(name).unwrap().birth = *birth;
        }
        let mut expected: Vec<(u64, String)> =
            births.iter().map(|(name, birth)| (*birth, name.clone())).collect();
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, name)| name).collect();
        let service = Service::new(&host);
        proptest::prop_assert_eq!(listed(&service), expected.clone());
        // The same order once the records exist (read from sidecars, not from stat).
        proptest::prop_assert_eq!(listed(&service), expected);
    }
}

#[test]
fn hand_copied_backup_is_hashed_once() {
    let host = FakeHost::with_database(b"db");
    host.put("copied.db", b"bytes from elsewhere");
    let service = Service::new(&host);
    let first = service.list().unwrap();
    assert_eq!(host.hashed.get(), 1);
    assert_eq!(service.list().unwrap(), first);
    assert_eq!(service.read("copied.db").unwrap(), first[0]);
    assert_eq!(host.hashed.get(), 1);
    assert!(host.names().contains(&sidecar_name("copied.db")));
}

#[test]
fn verify_of_a_never_seen_file_records_it_and_hashes_once() {
    let host = FakeHost::with_database(b"db");
    host.put("copied.db", b"SQLite from elsewhere");
    let service = Service::new(&host);
    let verdict = service.verify("copied.db", false).unwrap();
    assert!(verdict.recorded_now);
    assert_eq!(verdict.problems, Vec::<String>::new());
    assert_eq!(host.hashed.get(), 1, "recorded, not hashed twice");
    let again = service.verify("copied.db", false).unwrap();
    assert!(!again.recorded_now);
    assert_eq!(again.problems, Vec::<String>::new());
}

#[test]
fn a_record_stands_until_the_backup_is_deleted() {
    let host = FakeHost::with_database(b"SQLite original");
    let service = Service::new(&host);
    let made = service.create(Some("x.db".into())).unwrap();
    // Edited in place, or replaced by another file under the same name: the record of
    // what was backed up stands, and verify says what happened.
    host.files.borrow_mut().get_mut("x.db").unwrap().bytes = b"SQLite tampered".to_vec();
    assert_eq!(service.read("x.db").unwrap().sha256_hash, made.sha256_hash);
    host.put("x.db", b"SQLite another file entirely");
    assert_eq!(service.read("x.db").unwrap().sha256_hash, made.sha256_hash);
    let verdict = service.verify("x.db", false).unwrap();
    let problems = verdict.problems.join("\n");
    assert!(
        problems.contains("replaced since its digests were recorded"),
        "{problems}"
    );
    assert!(problems.contains("SHA-256 differs"), "{problems}");
    assert!(!verdict.recorded_now);
}

#[test]
fn a_backup_deleted_by_hand_leaves_no_record_behind() {
    let host = FakeHost::with_database(b"SQLite original");
    let service = Service::new(&host);
    let made = service.create(Some("x.db".into())).unwrap();
    host.files.borrow_mut().remove("x.db");
    assert_eq!(service.list().unwrap(), vec![]);
    assert!(host.names().is_empty(), "the orphaned sidecar is gone");
    host.put("x.db", b"SQLite copied in later");
    let verdict = service.verify("x.db", false).unwrap();
    assert!(verdict.recorded_now);
    assert_eq!(verdict.problems, Vec::<String>::new());
    assert_ne!(verdict.backup.sha256_hash, made.sha256_hash);
}

#[test]
fn exists_and_delete_round_trip() {
    let host = FakeHost::with_database(b"db");
    let service = Service::new(&host);
    assert_eq!(service.exists("x.db"), Ok(false));
    service.create(Some("x.db".into())).unwrap();
    assert_eq!(service.exists("x.db"), Ok(true));
    assert_eq!(service.delete("x.db"), Ok(()));
    assert_eq!(service.exists("x.db"), Ok(false));
    assert!(host.names().is_empty(), "sidecar removed too");
    assert_eq!(service.delete("x.db"), Err(Error::NotFound));
    assert_eq!(service.read("x.db"), Err(Error::NotFound));
}

#[test]
fn reads_of_invalid_names_are_refused_not_missing() {
    let host = FakeHost::with_database(b"db");
    let service = Service::new(&host);
    let sidecar = sidecar_name("x.db");
    service.create(Some("x.db".into())).unwrap();
    for name in ["..", sidecar.as_str(), "a/b"] {
        assert!(matches!(service.exists(name), Err(Error::InvalidName(_))));
        assert!(matches!(service.read(name), Err(Error::InvalidName(_))));
        assert!(matches!(service.delete(name), Err(Error::InvalidName(_))));
    }
    assert_eq!(host.names().len(), 2);
}

#[test]
fn verify_passes_a_sound_backup_and_names_every_failed_check() {
    let host = FakeHost::with_database(b"SQLite format 3 content");
    let service = Service::new(&host);
    service.create(Some("x.db".into())).unwrap();
    let sound = service.verify("x.db", false).unwrap();
    assert_eq!(sound.problems, Vec::<String>::new());
    assert!(!sound.full);

    host.files.borrow_mut().get_mut("x.db").unwrap().bytes = b"tampered".to_vec();
    let verdict = service.verify("x.db", true).unwrap();
    assert!(verdict.full);
    let problems = verdict.problems.join("\n");
    assert!(
        problems.contains("length differs: recorded 23 bytes, now 8 bytes"),
        "{problems}"
    );
    assert!(problems.contains("SHA-256 differs"), "{problems}");
    assert!(
        problems.contains("integrity_check: file is not a database"),
        "{problems}"
    );
    assert_eq!(
        verdict.backup.sha256_hash, sound.backup.sha256_hash,
        "the recorded digest"
    );
    assert_ne!(verdict.actual.sha256, sound.actual.sha256, "the digest now");
}

#[test]
fn restore_refuses_a_tampered_backup_and_touches_nothing() {
    let host = FakeHost::with_database(b"SQLite format 3 old");
    let service = Service::new(&host);
    service.create(Some("x.db".into())).unwrap();
    host.files.borrow_mut().get_mut("x.db").unwrap().bytes[0] ^= 1;
    *host.database.borrow_mut() = b"SQLite format 3 live".to_vec();
    let names = host.names();
    let refused = service.restore("x.db");
    assert!(
        matches!(&refused, Err(Error::Corrupt(why)) if why.contains("SHA-256 differs") && why.contains("not touched")),
        "{refused:?}"
    );
    assert_eq!(*host.database.borrow(), b"SQLite format 3 live");
    assert_eq!(host.names(), names, "no safety backup was taken");
}

#[test]
fn restore_takes_a_safety_backup_then_replaces_the_content() {
    let host = FakeHost::with_database(b"SQLite format 3 then");
    let service = Service::new(&host);
    service.create(Some("x.db".into())).unwrap();
    *host.database.borrow_mut() = b"SQLite format 3 now".to_vec();
    let restoration = service.restore("x.db").unwrap();
    assert_eq!(*host.database.borrow(), b"SQLite format 3 then");
    assert_eq!(restoration.restored.filename, "x.db");
    let safety = &restoration.safety_backup.filename;
    assert!(
        safety.starts_with("pre-restore-") && safety.ends_with(".db"),
        "{safety}"
    );
    assert_eq!(
        host.files.borrow()[safety.as_str()].bytes,
        b"SQLite format 3 now"
    );
    assert!(
        service
            .list()
            .unwrap()
            .iter()
            .any(|b| &b.filename == safety)
    );
    assert!(service.verify(safety, false).unwrap().problems.is_empty());
}

// Before 0.2.0 the safety copy came from `take`, a separate instant from the replacement:
// commits landing in between were in neither. Now it comes from `take-for-restore`, inside
// the transaction that replaces the content, and the verified bytes' SHA-256 goes along.
#[test]
fn restore_copies_the_live_database_inside_the_replacing_transaction() {
    let host = FakeHost::with_database(b"SQLite format 3 then");
    let service = Service::new(&host);
    let backup = service.create(Some("x.db".into())).unwrap();
    *host.database.borrow_mut() = b"SQLite format 3 now".to_vec();
    host.take_calls();
    let restoration = service.restore("x.db").unwrap();
    let snapshots: Vec<String> = host
        .take_calls()
        .into_iter()
        .filter(|call| call.starts_with("take") || call.starts_with("restore"))
        .collect();
    assert_eq!(
        snapshots,
        [
            "take-for-restore x.db".to_owned(),
            format!("restore x.db {}", backup.sha256_hash),
        ]
    );
    assert_eq!(restoration.restored.sha256_hash, backup.sha256_hash);
}

// Before 0.2.0 a failed check made the guest restore the safety backup over the live
// database, which would undo commits made since; the host now rolls back on its own.
#[test]
fn failed_restore_leaves_the_live_database_and_names_the_safety_backup() {
    let host = FakeHost::with_database(b"SQLite format 3 then");
    let service = Service::new(&host);
    service.create(Some("x.db".into())).unwrap();
    *host.database.borrow_mut() = b"SQLite format 3 now".to_vec();
    *host.failing_restore.borrow_mut() =
        Some(Error::Corrupt("quick_check: page 3 is never used".into()));
    host.take_calls();
    let failed = service.restore("x.db");
    let safety = safety_backups(&host);
    assert_eq!(safety.len(), 1, "{safety:?}");
    let Err(Error::Corrupt(why)) = &failed else {
        panic!("{failed:?}")
    };
    assert!(why.contains("quick_check: page 3 is never used"), "{why}");
    assert!(why.contains("the live database was not changed"), "{why}");
    assert!(
        why.contains(&format!("the safety backup {} was kept", safety[0])),
        "{why}"
    );
    assert_eq!(*host.database.borrow(), b"SQLite format 3 now");
    let restores = host
        .take_calls()
        .into_iter()
        .filter(|call| call.starts_with("restore"))
        .count();
    assert_eq!(
        restores, 1,
        "the safety backup is not restored over the live database"
    );
}

// Item 13: an error after the safety backup exists said nothing of it.
#[test]
fn every_error_after_the_safety_backup_names_it() {
    for failure in [
        Error::Io("disk I/O error".into()),
        Error::Busy,
        Error::NoDatabase("the live database was deleted".into()),
    ] {
        let host = FakeHost::with_database(b"SQLite format 3 then");
        let service = Service::new(&host);
        service.create(Some("x.db".into())).unwrap();
        *host.failing_restore.borrow_mut() = Some(failure.clone());
        let failed = service.restore("x.db");
        let safety = safety_backups(&host);
        let Err(Error::Io(why)) = &failed else {
            panic!("{failure:?} gave {failed:?}")
        };
        assert!(why.starts_with("x.db was not restored: "), "{why}");
        assert!(
            why.ends_with(&format!(
                "the live database was not changed; the safety backup {} was kept",
                safety[0]
            )),
            "{why}"
        );
    }
}

// Item 25: a backup the host cannot write page for page into the live database was found
// out only after a full-size safety backup had been left behind.
#[test]
fn restore_refused_before_the_copy_leaves_no_safety_backup() {
    let host = FakeHost::with_database(b"SQLite format 3 then");
    let service = Service::new(&host);
    service.create(Some("x.db".into())).unwrap();
    let refusal = Error::NotPermitted("page size differs: 65536 against 4096".into());
    *host.refuse_take_for_restore.borrow_mut() = Some(refusal.clone());
    assert_eq!(service.restore("x.db"), Err(refusal));
    assert!(safety_backups(&host).is_empty());
    assert!(host.names().iter().all(|n| !n.ends_with(".tmp")));
}

/// The safety backups in the directory.
fn safety_backups(host: &FakeHost) -> Vec<String> {
    host.names()
        .into_iter()
        .filter(|name| name.starts_with(names::SAFETY_PREFIX))
        .collect()
}

#[test]
fn restore_of_a_missing_or_invalid_backup_is_refused() {
    let host = FakeHost::with_database(b"SQLite format 3");
    let service = Service::new(&host);
    assert_eq!(service.restore("nope.db").unwrap_err(), Error::NotFound);
    assert!(matches!(
        service.restore("../x"),
        Err(Error::InvalidName(_))
    ));
    assert!(host.names().is_empty());
}

/// Makes the sidecar of `name` fail to read, as one over 64 KiB does.
fn spoil_sidecar(host: &FakeHost, name: &str) {
    host.unreadable.borrow_mut().insert(sidecar_name(name));
}

// Item 24: one sidecar the host refused to read (over 64 KiB) failed every listing.
#[test]
fn an_unreadable_sidecar_does_not_break_the_listing() {
    let host = FakeHost::with_database(b"SQLite");
    let service = Service::new(&host);
    let a = service.create(Some("a.db".into())).unwrap();
    let b = service.create(Some("b.db".into())).unwrap();
    spoil_sidecar(&host, "a.db");
    let hashed = host.hashed.get();
    let listed = service.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], b);
    assert_eq!(
        listed[0].sha256_hash, a.sha256_hash,
        "digests computed again"
    );
    assert_eq!(host.hashed.get(), hashed + 1);
    // The fresh record replaced the bad one: the next listing hashes nothing.
    assert!(host.unreadable.borrow().is_empty());
    service.list().unwrap();
    assert_eq!(host.hashed.get(), hashed + 1);
}

// Item 24: a sidecar that can be neither read nor replaced (a directory in its place).
#[test]
fn a_sidecar_that_can_be_neither_read_nor_written_still_lists_and_reads() {
    let host = FakeHost::with_database(b"SQLite");
    let service = Service::new(&host);
    let a = service.create(Some("a.db".into())).unwrap();
    service.create(Some("b.db".into())).unwrap();
    spoil_sidecar(&host, "a.db");
    host.fail_writes.set(true);
    let names: Vec<String> = service
        .list()
        .unwrap()
        .into_iter()
        .map(|backup| backup.filename)
        .collect();
    assert_eq!(names, ["a.db", "b.db"]);
    let read = service.read("a.db").unwrap();
    assert_eq!(read.sha256_hash, a.sha256_hash);
    assert_eq!(service.exists("a.db"), Ok(true));
}

// Item 24: verify said nothing of a record it could not read.
#[test]
fn verify_reports_a_record_it_could_not_read() {
    let host = FakeHost::with_database(b"SQLite");
    let service = Service::new(&host);
    service.create(Some("x.db".into())).unwrap();
    spoil_sidecar(&host, "x.db");
    let verdict = service.verify("x.db", false).unwrap();
    assert!(verdict.recorded_now);
    assert_eq!(
        verdict.problems,
        ["its metadata record could not be read (the file is over 64 KiB); digests recorded now"]
    );
    let again = service.verify("x.db", false).unwrap();
    assert!(!again.recorded_now, "the record was written again");
    assert_eq!(again.problems, Vec::<String>::new());
    // A restore goes by the same verdict: nothing is touched on a lost record's word.
    spoil_sidecar(&host, "x.db");
    *host.database.borrow_mut() = b"SQLite live".to_vec();
    let refused = service.restore("x.db");
    assert!(
        matches!(&refused, Err(Error::Corrupt(why)) if why.contains("could not be read")),
        "{refused:?}"
    );
    assert_eq!(*host.database.borrow(), b"SQLite live");
}

#[test]
fn verify_reports_a_damaged_record_and_one_it_could_not_write() {
    let host = FakeHost::with_database(b"SQLite");
    let service = Service::new(&host);
    service.create(Some("x.db".into())).unwrap();
    host.put(
        &sidecar_name("x.db"),
        b"litegraph-backup-metadata 1\nfilename\tx.db\n",
    );
    host.fail_writes.set(true);
    let verdict = service.verify("x.db", false).unwrap();
    assert!(verdict.recorded_now);
    assert_eq!(
        verdict.problems,
        [
            "its metadata record could not be read (it is damaged or not a record of this \
          backup); digests, computed now, could not be recorded (disk full)"
        ]
    );
    // A backup that never had a record is no problem; failing to record it is reported.
    host.put("copied.db", b"SQLite copied in");
    let copied = service.verify("copied.db", false).unwrap();
    assert_eq!(
        copied.problems,
        ["its digests, computed now, could not be recorded (disk full)"]
    );
}

// Item 23: a listing must stay within a budget proportional to the directory's entries.
#[test]
fn list_costs_two_host_calls_per_recorded_backup() {
    let host = FakeHost::with_database(b"SQLite");
    let service = Service::new(&host);
    for i in 0..5 {
        service.create(Some(format!("{i}.db"))).unwrap();
    }
    host.put(".lgb-1-2-3.tmp", b"partial");
    host.take_calls();
    service.list().unwrap();
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1 + 2 * 5, "{calls:?}");
}
