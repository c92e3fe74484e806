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
        "..\\x.db".into(),
        "a/../b.db".into(),
        // A right-to-left override: displays as `reportbd.csv`.
        "report\u{202E}vsc.db".into(),
        "x\u{2066}y.db".into(),
        "zero\u{200B}width.db".into(),
        "\u{FEFF}bom.db".into(),
        "soft\u{AD}hyphen.db".into(),
        // `é` as `e` and a combining accent: looks like the NFC `\u{e9}.db`.
        "e\u{301}.db".into(),
    ]
}

// Item 14: `../x.db` was refused "for starting with `.`", which hid what the name tried.
#[test]
fn traversal_is_refused_as_traversal() {
    let deployment = Deployment::with_nodes(10);
    let runtime = deployment.runtime();
    for name in ["../x.db", "..\\x.db", "a/../b.db", ".."] {
        let refused = runtime.create(Some(name));
        assert!(
            matches!(&refused, Err(Error::InvalidName(why)) if why.contains("steps out of the backup directory")),
            "{name:?}: {refused:?}"
        );
        let output = deployment.run(&["create", name]);
        assert_eq!(output.status.code(), Some(2), "{name:?}");
        assert!(
            stderr(&output).contains("steps out of the backup directory (`..`)"),
            "{name:?}: {}",
            stderr(&output)
        );
    }
}

// Item 14: names with bidirectional controls, invisible characters or in a decomposed form
// were accepted, so two files could look like one name.
#[test]
fn names_that_look_like_other_names_are_refused() {
    let deployment = Deployment::with_nodes(10);
    let runtime = deployment.runtime();
    runtime
        .create(Some("\u{e9}.db"))
        .expect("an NFC name is fine");
    for (name, reason) in [
        ("report\u{202E}vsc.db", "bidirectional control U+202E"),
        ("zero\u{200B}width.db", "invisible format character U+200B"),
        ("e\u{301}.db", "not in Unicode NFC"),
    ] {
        let refused = runtime.create(Some(name));
        assert!(
            matches!(&refused, Err(Error::InvalidName(why)) if why.contains(reason)),
            "{name:?}: {refused:?}"
        );
    }
    let names: Vec<String> = runtime
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.filename)
        .collect();
    assert_eq!(names, ["\u{e9}.db"]);
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
