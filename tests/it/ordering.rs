//! The order of a listing: oldest first, by recorded creation time, then by name; never by
//! name alone.

use crate::support::Deployment;

/// The names a listing answers, in its order.
fn listed(deployment: &Deployment) -> Vec<String> {
    deployment
        .runtime()
        .list()
        .expect("list")
        .into_iter()
        .map(|backup| backup.filename)
        .collect()
}

// Item 3: list sorted by name bytes, so `b.db` made first came last, and `...-10.db` came
// before `...-2.db`.
#[test]
fn list_is_in_order_of_creation_whatever_the_names() {
    let deployment = Deployment::with_nodes(10);
    let runtime = deployment.runtime();
    let mut made: Vec<String> = ["b.db", "a.db", "10.db", "2.db"]
        .into_iter()
        .map(|name| runtime.create(Some(name)).expect("create").filename)
        .collect();
    // Default names: several land in the same second, numbered `-2`, `-3`, ... `-10`...
    made.extend((0..11).map(|_| runtime.create(None).expect("create").filename));
    let mut by_name = made.clone();
    by_name.sort();
    assert_ne!(by_name, made, "the names alone would give another order");

    let backups = runtime.list().expect("list");
    let names: Vec<String> = backups.iter().map(|b| b.filename.clone()).collect();
    assert_eq!(names, made);
    assert!(
        backups
            .windows(2)
            .all(|pair| pair[0].created_utc <= pair[1].created_utc),
        "creation times ascend"
    );
    // The order comes from the records, so another runtime (a restart) answers the same.
    assert_eq!(listed(&deployment), made);
}

#[test]
fn a_safety_backup_is_listed_after_the_backups_made_before_it() {
    let deployment = Deployment::with_nodes(10);
    let runtime = deployment.runtime();
    runtime.create(Some("z.db")).expect("create");
    let restoration = runtime.restore("z.db").expect("restore");
    let safety = restoration.safety_backup.filename;
    assert!(safety.starts_with("pre-restore-"), "{safety}");
    // By name, `pre-restore-...` sorts before `z.db`; by age it comes after.
    assert_eq!(listed(&deployment), ["z.db".to_owned(), safety]);
}
