//! Offsite copies through the service, on the in-memory host and its fake targets.

use super::super::fake::FakeHost;
use super::*;
use crate::manifest::manifest_key;

const DATABASE: &[u8] = b"SQLite format 3\0 pages";

fn rules(keep_last: u32) -> Retention {
    Retention {
        keep_last: Some(keep_last),
        keep_hourly: None,
        keep_daily: None,
        keep_weekly: None,
        keep_monthly: None,
        keep_yearly: None,
        keep_within_seconds: None,
        include_named: false,
    }
}

/// A host with one backup, `x.db`, and one target that compresses and encrypts.
fn host_with_backup() -> FakeHost {
    let host = FakeHost::with_database(DATABASE);
    host.add_target("offsite", &["zstd", "age"]);
    Service::new(&host).create(Some("x.db".into())).unwrap();
    host.take_calls();
    host
}

#[test]
fn a_push_stores_the_bytes_then_the_manifest_last() {
    let host = host_with_backup();
    let service = Service::new(&host);
    let outcomes = service.push("x.db", None).unwrap();
    assert_eq!(outcomes.len(), 1);
    let pushed = &outcomes[0].pushed;
    assert!(outcomes[0].uploaded);
    assert_eq!(pushed.target, "offsite");
    assert_eq!(pushed.encoding, ["zstd", "age"]);
    assert!(pushed.key.starts_with("data/x.db/") && pushed.key.ends_with(".db.zst.age"));
    let writes: Vec<String> = host
        .take_calls()
        .into_iter()
        .filter(|call| call.starts_with("remote-put"))
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes[0].starts_with("remote-put-file offsite data/x.db/"));
    assert_eq!(writes[1], "remote-put offsite manifests/x.db.manifest");
    let listed = service.remote_list("offsite").unwrap();
    assert_eq!(listed, vec![pushed.clone()]);
    assert_eq!(
        listed[0].backup.sha256_hash,
        service.read("x.db").unwrap().sha256_hash
    );
}

#[test]
fn a_second_push_uploads_nothing_and_overwrites_nothing() {
    let host = host_with_backup();
    let service = Service::new(&host);
    let first = service.push("x.db", Some("offsite")).unwrap();
    let keys = host.keys("offsite");
    host.take_calls();
    let second = service.push("x.db", Some("offsite")).unwrap();
    assert!(!second[0].uploaded);
    assert_eq!(second[0].pushed, first[0].pushed);
    assert_eq!(host.keys("offsite"), keys);
    assert!(
        !host
            .take_calls()
            .iter()
            .any(|c| c.starts_with("remote-put"))
    );
}

#[test]
fn unpushed_names_the_local_backups_a_target_lacks_oldest_first() {
    let host = host_with_backup();
    let service = Service::new(&host);
    for _ in 0..2 {
        host.clock.set(host.clock.get() + 60);
        service.create(None).unwrap();
    }
    let local: Vec<String> = service
        .list()
        .unwrap()
        .into_iter()
        .map(|b| b.filename)
        .collect();
    assert_eq!(service.unpushed("offsite").unwrap(), local);
    service.push(&local[1], None).unwrap();
    assert_eq!(
        service.unpushed("offsite").unwrap(),
        vec![local[0].clone(), local[2].clone()]
    );
    for name in &local {
        service.push(name, None).unwrap();
    }
    assert_eq!(service.unpushed("offsite").unwrap(), Vec::<String>::new());
}

#[test]
fn a_backup_changed_since_it_was_recorded_is_not_pushed() {
    let host = host_with_backup();
    host.files.borrow_mut().get_mut("x.db").unwrap().bytes = b"SQLite tampered".to_vec();
    let service = Service::new(&host);
    let refused = service.push("x.db", None);
    assert!(
        matches!(&refused, Err(Error::Corrupt(why)) if why.contains("offsite") && why.contains("nothing was pushed")),
        "{refused:?}"
    );
    assert!(
        host.keys("offsite").is_empty(),
        "{:?}",
        host.keys("offsite")
    );
}

#[test]
fn another_backup_under_the_same_name_is_never_overwritten() {
    let host = host_with_backup();
    let service = Service::new(&host);
    service.push("x.db", None).unwrap();
    service.delete("x.db").unwrap();
    *host.database.borrow_mut() = b"SQLite other content".to_vec();
    service.create(Some("x.db".into())).unwrap();
    let keys = host.keys("offsite");
    let refused = service.push("x.db", None);
    assert!(
        matches!(&refused, Err(Error::InvalidArgument(why)) if why.contains("another backup")),
        "{refused:?}"
    );
    assert_eq!(host.keys("offsite"), keys);
}

#[test]
fn a_push_removes_the_objects_of_interrupted_attempts() {
    let host = host_with_backup();
    host.objects.borrow_mut().insert(
        (
            "offsite".into(),
            "data/x.db/19700101T000000.000000001Z.db.zst.age".into(),
        ),
        (b"half".to_vec(), 0),
    );
    let service = Service::new(&host);
    let pushed = service.push("x.db", None).unwrap();
    assert_eq!(
        host.keys("offsite"),
        vec![pushed[0].pushed.key.clone(), manifest_key("x.db")]
    );
}

#[test]
fn an_object_without_its_manifest_is_never_listed_or_pulled() {
    let host = host_with_backup();
    host.objects.borrow_mut().insert(
        (
            "offsite".into(),
            "data/y.db/19700101T000000.000000001Z.db".into(),
        ),
        (DATABASE.to_vec(), 0),
    );
    let service = Service::new(&host);
    assert_eq!(service.remote_list("offsite").unwrap(), vec![]);
    assert_eq!(service.pull("offsite", "y.db"), Err(Error::NotFound));
}

#[test]
fn a_pull_publishes_a_recorded_backup_with_the_pushed_facts() {
    let host = host_with_backup();
    let service = Service::new(&host);
    let original = service.read("x.db").unwrap();
    service.push("x.db", None).unwrap();
    service.delete("x.db").unwrap();
    let pulled = service.pull("offsite", "x.db").unwrap();
    assert_eq!(host.files.borrow()["x.db"].bytes, DATABASE);
    assert_eq!(pulled.sha256_hash, original.sha256_hash);
    assert_eq!(pulled.created_utc, original.created_utc);
    assert_eq!(service.read("x.db").unwrap(), pulled);
    assert_eq!(service.pull("offsite", "x.db"), Err(Error::Exist));
}

#[test]
fn a_tampered_object_is_refused_and_nothing_is_published() {
    let host = host_with_backup();
    let service = Service::new(&host);
    let key = service.push("x.db", None).unwrap()[0].pushed.key.clone();
    service.delete("x.db").unwrap();
    host.objects
        .borrow_mut()
        .get_mut(&("offsite".to_owned(), key))
        .unwrap()
        .0
        .extend_from_slice(b"!");
    let before = host.names();
    let refused = service.pull("offsite", "x.db");
    assert!(
        matches!(&refused, Err(Error::Corrupt(why)) if why.contains("nothing was published")),
        "{refused:?}"
    );
    // The download's temporary is the host's to remove when the operation ends.
    let published: Vec<String> = host
        .names()
        .into_iter()
        .filter(|name| !before.contains(name) && !name.starts_with(".lgb-download"))
        .collect();
    assert!(published.is_empty(), "{published:?}");
    let verdict = service.remote_verify("offsite", "x.db").unwrap();
    assert!(
        verdict.problems[0].starts_with("the stored object differs"),
        "{:?}",
        verdict.problems
    );
    assert!(
        verdict
            .problems
            .iter()
            .any(|p| p.starts_with("SHA-256 differs"))
    );
}

#[test]
fn remote_verify_passes_a_sound_copy_and_keeps_nothing() {
    let host = host_with_backup();
    let service = Service::new(&host);
    service.push("x.db", None).unwrap();
    let before = host.names();
    let verdict = service.remote_verify("offsite", "x.db").unwrap();
    assert_eq!(verdict.problems, Vec::<String>::new());
    assert_eq!(verdict.actual.sha256, verdict.remote.backup.sha256_hash);
    assert_eq!(host.names(), before);
}

#[test]
fn remote_prune_applies_the_rules_manifest_first_and_sweeps_old_leftovers() {
    let host = host_with_backup();
    let service = Service::new(&host);
    for _ in 0..2 {
        host.clock.set(host.clock.get() + 60);
        service.create(None).unwrap();
    }
    for backup in service.list().unwrap() {
        service.push(&backup.filename, None).unwrap();
    }
    let stale = "data/gone.db/19700101T000000.000000001Z.db".to_owned();
    let fresh = "data/busy.db/19700101T000000.000000002Z.db".to_owned();
    let now = host.clock.get();
    host.objects.borrow_mut().insert(
        ("offsite".into(), stale.clone()),
        (b"x".to_vec(), now - 7200),
    );
    host.objects
        .borrow_mut()
        .insert(("offsite".into(), fresh.clone()), (b"x".to_vec(), now - 60));
    host.take_calls();
    let decisions = service.remote_prune("offsite", &rules(1), false).unwrap();
    let kept: Vec<(&str, bool)> = decisions
        .iter()
        .map(|d| (d.backup.filename.as_str(), d.keep))
        .collect();
    // x.db was named by a person: not subject to the rules.
    assert_eq!(kept.len(), 3);
    assert_eq!(kept.iter().filter(|(_, keep)| !keep).count(), 1, "{kept:?}");
    let removed = decisions.iter().find(|d| !d.keep).unwrap();
    let deletes: Vec<String> = host
        .take_calls()
        .into_iter()
        .filter(|c| c.starts_with("remote-delete"))
        .collect();
    assert_eq!(
        deletes[0],
        format!(
            "remote-delete offsite manifests/{}.manifest",
            removed.backup.filename
        )
    );
    let keys = host.keys("offsite");
    assert!(!keys.contains(&stale), "{keys:?}");
    assert!(keys.contains(&fresh), "{keys:?}");
    assert_eq!(service.remote_list("offsite").unwrap().len(), 2);
}

#[test]
fn an_unknown_target_is_named_with_the_known_ones() {
    let host = host_with_backup();
    let service = Service::new(&host);
    let refused = service.remote_list("elsewhere");
    assert!(
        matches!(&refused, Err(Error::InvalidArgument(why)) if why.contains("elsewhere") && why.contains("offsite")),
        "{refused:?}"
    );
    let bare = FakeHost::with_database(DATABASE);
    Service::new(&bare).create(Some("x.db".into())).unwrap();
    let refused = Service::new(&bare).push("x.db", None);
    assert!(
        matches!(&refused, Err(Error::InvalidArgument(why)) if why.contains("no remote target")),
        "{refused:?}"
    );
}

#[test]
fn a_manifest_whose_object_is_gone_is_a_damaged_backup_not_a_missing_one() {
    let host = host_with_backup();
    let service = Service::new(&host);
    let key = service.push("x.db", None).unwrap()[0].pushed.key.clone();
    host.objects
        .borrow_mut()
        .remove(&("offsite".to_owned(), key.clone()));
    service.delete("x.db").unwrap();
    // Before: "no backup named x.db", while `remote-list` still listed it.
    let refused = service.pull("offsite", "x.db");
    assert!(
        matches!(&refused, Err(Error::Corrupt(why)) if why.contains(&key) && why.contains("no longer holds")),
        "{refused:?}"
    );
    let verdict = service.remote_verify("offsite", "x.db").unwrap();
    assert_eq!(verdict.problems.len(), 1, "{:?}", verdict.problems);
    assert!(verdict.problems[0].contains("no longer holds"));
}
