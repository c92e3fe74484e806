//! Every way of naming something outside the backup directory is refused, by the policy
//! and by the CLI, and a refused request changes nothing anywhere.

use litegraph_backup::Error;
use litegraph_backup_tests::file_sha256;

use crate::support::{Deployment, stderr};

/// Names that try to leave the directory, hide among internal files or break the rules.
fn hostile_names() -> Vec<String> {
    vec![
        "../x.db".into(),
        "..".into(),
        ".".into(),
        "/etc/passwd".into(),
        "a/b.db".into(),
        "a\\b.db".into(),
        "a\0b.db".into(),
        "a\nb.db".into(),
        "x".repeat(256),
        ".hidden.db".into(),
        String::new(),
        "trailing.".into(),
        "trailing ".into(),
        "../../../../../../tmp/escape.db".into(),
    ]
}

#[test]
fn every_traversal_form_is_refused_and_nothing_changes() {
    let deployment = Deployment::with_nodes(10);
    let runtime = deployment.runtime();
    runtime.create(Some("keep.db")).expect("create");
    let before = deployment.tree();
    let passwd = file_sha256("/etc/passwd".as_ref()).ok();

    for name in hostile_names() {
        let refused = |result: Result<(), Error>, call: &str| {
            assert!(
                matches!(result, Err(Error::InvalidName(_))),
                "{call}({name:?}) gave {result:?}"
            );
        };
        refused(runtime.create(Some(&name)).map(drop), "create");
        refused(runtime.read(&name).map(drop), "read");
        refused(runtime.exists(&name).map(drop), "exists");
        refused(runtime.delete(&name), "delete");
    }

    // The tree covers the backup directory's parent, where `../x.db` would land.
    assert_eq!(deployment.tree(), before);
    assert_eq!(file_sha256("/etc/passwd".as_ref()).ok(), passwd);
    assert!(!std::path::Path::new("/tmp/escape.db").exists());
}

#[test]
fn cli_refuses_every_traversal_form_with_exit_2_and_changes_nothing() {
    let deployment = Deployment::with_nodes(10);
    assert!(deployment.run(&["create", "keep.db"]).status.success());
    let before = deployment.tree();

    // A NUL cannot be passed in argv; every other form can. Every name goes to the commands
    // that write (create, delete); a few to those that read, which share the same check.
    let names: Vec<String> = hostile_names()
        .into_iter()
        .filter(|n| !n.contains('\0'))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let commands: &[&str] = if i < 3 {
            &["create", "delete", "show", "exists"]
        } else {
            &["create", "delete"]
        };
        for &command in commands {
            let output = deployment.run(&[command, name]);
            assert_eq!(output.status.code(), Some(2), "{command} {name:?}");
            let message = stderr(&output);
            assert!(
                message.starts_with("error: invalid backup name"),
                "{command} {name:?}: {message}"
            );
            assert_eq!(
                message.trim_end().lines().count(),
                1,
                "one line: {message:?}"
            );
        }
    }

    assert_eq!(deployment.tree(), before);
    assert!(!std::path::Path::new("/tmp/escape.db").exists());
}
