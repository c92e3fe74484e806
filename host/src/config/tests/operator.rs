//! Settings a first-time operator got wrong, and what they are told.

use super::*;

#[test]
fn an_empty_recipients_list_is_refused_not_taken_as_plaintext() {
    let none = FakeEnvironment(vec![]);
    let text = "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\nage_recipients = []\n";
    let error = with_file(text, &["list"], &none).expect_err("an empty list");
    assert!(error.contains("line 4"), "{error}");
    assert!(error.contains("lists no recipient"), "{error}");

    let text =
        format!("[[remote]]\nname = \"o\"\nurl = \"d\"\nage_recipients = [\"{RECIPIENT}\"]\n");
    let config = with_file(&text, &["list"], &none).expect("one recipient");
    assert_eq!(config.remotes[0].recipients, [RECIPIENT]);

    let text = "[[remote]]\nname = \"o\"\nurl = \"d\"\n";
    let config = with_file(text, &["list"], &none).expect("no key: unencrypted, as documented");
    assert!(config.remotes[0].recipients.is_empty());
}

#[test]
fn an_option_of_the_remote_target_without_it_names_itself() {
    let none = FakeEnvironment(vec![]);
    for (args, named) in [
        (&["--zstd", "list"][..], "--zstd"),
        (
            &["--age-recipient", RECIPIENT, "list"][..],
            "--age-recipient",
        ),
        (
            &["--age-identity", "/k/key.txt", "list"][..],
            "--age-identity",
        ),
        (
            &["--remote-endpoint", "http://127.0.0.1:1", "list"][..],
            "--remote-endpoint",
        ),
        (&["--remote-allow-http", "list"][..], "--remote-allow-http"),
    ] {
        let error = Config::new_in(&matches(args), &none)
            .expect_err("an option of a target not given")
            .to_string();
        assert!(
            error.starts_with(&format!("{named} applies to the --remote target")),
            "{args:?}: {error}"
        );
        assert!(error.contains("LITEGRAPH_BACKUP_REMOTE"), "{error}");
    }
    let config = Config::new_in(&matches(&["--remote", "/srv/x", "--zstd", "list"]), &none)
        .expect("with --remote");
    assert_eq!(config.remotes[0].zstd_level, Some(DEFAULT_ZSTD_LEVEL));
}

#[test]
fn plain_http_by_default_shows_as_loopback_only() {
    let none = FakeEnvironment(vec![]);
    let text = "[[remote]]\nname = \"o\"\nurl = \"s3://b\"\nendpoint = \"http://127.0.0.1:8014\"\n";
    let config = with_file(text, &["list"], &none).expect("loopback HTTP");
    let shown = entry(&config.report, "remote.o.allow_http");
    assert_eq!(
        (shown.value.as_str(), &shown.source),
        ("loopback only", &Source::Default)
    );
    let text = format!("{text}allow_http = true\n");
    let config = with_file(&text, &["list"], &none).expect("asked for");
    assert_eq!(entry(&config.report, "remote.o.allow_http").value, "true");
}
