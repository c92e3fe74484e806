//! What a first-time operator ran into with offsite copies, end to end through the CLI: an
//! empty recipients list, a target that is down keeping a backup from the others, the
//! `--remote` target's environment variables, and the messages that should have said more.

use std::path::PathBuf;
use std::process::Output;

use crate::support::{Deployment, stderr, stdout};

use super::setup::{Encoding, Offsite, TARGET};

/// A config file of `tables` next to the keys (it may hold the server's secret: mode 600).
fn config_of(offsite: &Offsite, file_name: &str, tables: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = offsite.scratch(file_name);
    std::fs::write(&path, tables).expect("write the config file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path
}

/// The `[[remote]]` table of the loopback S3 server, named `offsite`, with `extra` lines.
fn s3_table(offsite: &Offsite, extra: &str) -> String {
    format!(
        "[[remote]]\nname = \"{TARGET}\"\nurl = \"s3://{}/lg\"\nendpoint = \"{}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n{extra}",
        offsite.server.bucket(),
        offsite.server.endpoint(),
        offsite.server.access_key(),
        offsite.server.secret_key(),
    )
}

fn said(output: &Output) -> String {
    format!("stdout: {}\nstderr: {}", stdout(output), stderr(output))
}

#[test]
fn an_empty_recipients_list_is_refused_and_nothing_is_uploaded() {
    let offsite = Offsite::new(Deployment::with_nodes(20), Encoding::Plain);
    offsite.ok(&["create", "x.db"]);
    let config = config_of(
        &offsite,
        "empty.toml",
        &s3_table(&offsite, "age_recipients = []\n"),
    );
    let output = offsite.run_with(&config, &["push", "x.db"]);
    assert_eq!(output.status.code(), Some(2), "{}", said(&output));
    assert!(
        stderr(&output).contains("lists no recipient"),
        "{}",
        said(&output)
    );
    assert_eq!(
        offsite.server.objects(),
        Vec::<(String, u64)>::new(),
        "no plaintext sent"
    );
}

#[test]
fn push_without_a_target_tries_every_target_when_one_is_down() {
    let mut offsite = Offsite::new(Deployment::with_nodes(20), Encoding::Plain);
    offsite.ok(&["create", "x.db"]);
    let usb = offsite.scratch("usb");
    std::fs::create_dir(&usb).expect("the operator makes the directory");
    // The S3 target first: the one tried first is the one that is down.
    let tables = format!(
        "{}\n[[remote]]\nname = \"usb\"\nurl = \"{}\"\n",
        s3_table(&offsite, ""),
        usb.display()
    );
    let config = config_of(&offsite, "two.toml", &tables);
    offsite.server.kill();
    // The second time, usb holds it already and says so.
    for (args, usb_said) in [
        (&["push", "x.db"][..], "pushed x.db to usb"),
        (&["push", "--all"][..], "usb holds x.db already"),
    ] {
        let output = offsite.run_with(&config, args);
        assert_ne!(output.status.code(), Some(0), "{args:?}: {}", said(&output));
        assert!(
            stdout(&output).contains(usb_said),
            "{args:?}: {}",
            said(&output)
        );
        assert!(
            stderr(&output).contains(TARGET),
            "names the target down: {}",
            said(&output)
        );
        assert!(
            stderr(&output).contains("1 of 2 pushes failed"),
            "{}",
            said(&output)
        );
    }
    let listed = offsite.run_with(&config, &["remote", "list", "--target", "usb"]);
    assert_eq!(listed.status.code(), Some(0), "{}", said(&listed));
    assert!(
        stdout(&listed).contains("x.db"),
        "usb holds the backup: {}",
        said(&listed)
    );
}

#[test]
fn the_remote_targets_variables_apply_with_remote_as_a_flag_and_are_named_without_it() {
    let offsite = Offsite::new(Deployment::with_nodes(20), Encoding::Plain);
    offsite.ok(&["create", "x.db"]);
    let empty = config_of(&offsite, "none.toml", "");
    let target = offsite.scratch("flagged");
    std::fs::create_dir(&target).expect("the operator makes the directory");
    let pushed = offsite
        .cli_with(&empty)
        .env("LITEGRAPH_BACKUP_ZSTD", "1")
        .env("LITEGRAPH_BACKUP_AGE_RECIPIENT", &offsite.recipient)
        .args(["--remote", &target.display().to_string(), "push", "x.db"])
        .output()
        .expect("run the CLI");
    assert_eq!(pushed.status.code(), Some(0), "{}", said(&pushed));
    assert!(stdout(&pushed).contains("zstd+age"), "{}", said(&pushed));

    let lone = offsite
        .cli_with(&empty)
        .env("LITEGRAPH_BACKUP_AGE_RECIPIENT", &offsite.recipient)
        .args(["list"])
        .output()
        .expect("run the CLI");
    assert_eq!(lone.status.code(), Some(2), "{}", said(&lone));
    assert!(
        stderr(&lone).contains(
            "LITEGRAPH_BACKUP_AGE_RECIPIENT applies to the --remote target; set --remote or \
             LITEGRAPH_BACKUP_REMOTE"
        ),
        "{}",
        said(&lone)
    );
}

#[test]
fn a_scheduled_run_pushes_every_local_backup_a_target_lacks_oldest_first() {
    use litegraph_backup::Retention;
    use litegraph_backup::daemon::{Daemon, SharedStatus};
    use litegraph_backup::remote::{Location, TargetConfig, Targets};

    let deployment = Deployment::with_nodes(20);
    let target = deployment.root.path().join("offsite");
    std::fs::create_dir(&target).expect("mkdir the target");
    let remotes = Targets::open(vec![TargetConfig {
        name: "usb".into(),
        location: Location::Directory(target),
        zstd_level: None,
        recipients: Vec::new(),
        identity_files: Vec::new(),
    }])
    .expect("a directory target opens");
    let local = deployment.runtime();
    // Backups made while the target was away: no push of theirs ever went through.
    local.create(Some("early.db")).expect("create early.db");
    local.create(Some("later.db")).expect("create later.db");
    let runtime = litegraph_backup::Runtime::from_policy(
        crate::support::policy(),
        local.capabilities().clone().with_remotes(remotes),
    );
    let status = SharedStatus::new(None, Retention::default()).with_remotes(vec!["usb".into()]);
    // No scheduled backup exists yet: the first run is made at once.
    let daemon = Daemon::start(
        runtime.clone(),
        "1h".parse().expect("a schedule"),
        Retention::default(),
        status.clone(),
    )
    .expect("start the schedule");
    let ran = super::setup::eventually(std::time::Duration::from_secs(120), || {
        status.get().last_run.is_some()
    });
    daemon.finish();
    assert!(ran, "the first run ended: {:?}", status.get());
    let run = status.get().last_run.expect("a run");
    assert!(run.succeeded(), "{run:?}");
    let new = run.backup.expect("the run made a backup");

    let mut held: Vec<_> = runtime
        .remote_list("usb")
        .expect("list the target")
        .into_iter()
        .map(|r| (r.pushed_utc, r.backup.filename))
        .collect();
    held.sort();
    let names: Vec<&str> = held.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        names,
        ["early.db", "later.db", new.as_str()],
        "oldest first"
    );
}

#[test]
fn recover_of_a_damaged_local_backup_says_the_target_holds_a_copy() {
    let offsite = Offsite::new(Deployment::with_nodes(20), Encoding::Plain);
    offsite.ok(&["create", "x.db"]);
    offsite.ok(&["push", "x.db"]);
    let backup = offsite.deployment.backup("x.db");
    let mut bytes = std::fs::read(&backup).expect("read the backup");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&backup, bytes).expect("damage the local backup");

    let to = offsite.scratch("restored.db");
    let to_arg = to.display().to_string();
    let refused = offsite.run(&["recover", "--to", &to_arg, "x.db"]);
    assert_eq!(refused.status.code(), Some(4), "{}", said(&refused));
    assert!(
        stderr(&refused).contains(
            "remote target offsite holds a copy: move the damaged local backup away and \
             re-run to recover from it"
        ),
        "{}",
        said(&refused)
    );
    assert!(!to.exists(), "nothing was recovered");

    // As told: the damaged copy moved away, the re-run recovers from the target.
    std::fs::rename(&backup, offsite.scratch("x.db.damaged")).expect("move it away");
    let recovered = offsite.ok(&["recover", "--to", &to_arg, "x.db"]);
    assert!(
        stdout(&recovered).contains("remote target offsite"),
        "{}",
        said(&recovered)
    );
}

#[test]
fn a_bucket_that_does_not_exist_is_named_as_a_setting_to_fix() {
    let offsite = Offsite::new(Deployment::with_nodes(20), Encoding::Plain);
    let table = s3_table(&offsite, "").replace(
        &format!("s3://{}/lg", offsite.server.bucket()),
        "s3://nobucket/lg",
    );
    let config = config_of(&offsite, "nobucket.toml", &table);
    let output = offsite.run_with(&config, &["remote", "list"]);
    assert_eq!(output.status.code(), Some(2), "{}", said(&output));
    let expected = format!(
        "bucket nobucket does not exist on {}",
        offsite.server.endpoint()
    );
    assert!(stderr(&output).contains(&expected), "{}", said(&output));
}

#[test]
fn anonymous_requests_refused_say_that_no_credentials_were_given() {
    let offsite = Offsite::new(Deployment::with_nodes(20), Encoding::Plain);
    let table = format!(
        "[[remote]]\nname = \"{TARGET}\"\nurl = \"s3://{}/lg\"\nendpoint = \"{}\"\n\
         region = \"us-east-1\"\n",
        offsite.server.bucket(),
        offsite.server.endpoint(),
    );
    let config = config_of(&offsite, "anonymous.toml", &table);
    let output = offsite.run_with(&config, &["remote", "list"]);
    assert_eq!(output.status.code(), Some(2), "{}", said(&output));
    assert!(
        stderr(&output).contains(
            "no credentials were given (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or \
             access_key_id/secret_access_key)"
        ),
        "{}",
        said(&output)
    );
    assert!(
        !stderr(&output).contains("refused the credentials"),
        "{}",
        said(&output)
    );
}

#[test]
fn serve_warns_at_start_up_about_a_target_that_refuses_and_serves_anyway() {
    let offsite = Offsite::new(Deployment::with_nodes(20), Encoding::Plain);
    let config = offsite.config_with_secret("not-the-secret-key");
    let mut command = offsite.cli_with(&config);
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    let served = crate::serve::Served::spawn(command);
    let log = served.wait_for_log(
        "the start-up check's warning",
        std::time::Duration::from_secs(60),
        |log| log.contains("failed its start-up check"),
    );
    let line = log
        .lines()
        .find(|line| line.contains("failed its start-up check"))
        .expect("the warning");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("remote target offsite"), "{line}");
    assert!(line.contains("refused the credentials"), "says why: {line}");
    assert!(
        !line.contains("not-the-secret-key"),
        "never the secret: {line}"
    );
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "it served until asked to stop:\n{log}");
}
