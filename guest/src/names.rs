//! Which names a backup may have, and the default one.
//!
//! A backup name is a single, ordinary file name: it can never name a directory, step out of
//! the backup directory or hide among our internal files. The rules, in the order they are
//! checked (the first one broken is the one reported):
//!
//! 1. not empty;
//! 2. at most 255 bytes of UTF-8 (the usual `NAME_MAX`);
//! 3. not `.` or `..`;
//! 4. no leading `.` (reserved for internal files: temporaries and metadata);
//! 5. no `/` or `\` (no paths, on any platform);
//! 6. no NUL or other control character (U+0000-U+001F, U+007F-U+009F);
//! 7. no trailing space or `.` (Windows drops them silently, so two names would collide).

use crate::clock::Civil;
use crate::litegraph::backup::types::Datetime;

/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a name was refused. `Display` gives the sentence users see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong(usize),
    DotOrDotDot,
    LeadingDot,
    Separator(char),
    ControlCharacter(char),
    TrailingSpaceOrDot,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => write!(f, "the name is empty"),
            NameError::TooLong(n) => {
                write!(
                    f,
                    "the name is {n} bytes long; at most {MAX_NAME_BYTES} are allowed"
                )
            }
            NameError::DotOrDotDot => write!(f, "`.` and `..` are not file names"),
            NameError::LeadingDot => {
                write!(f, "names starting with `.` are reserved for internal files")
            }
            NameError::Separator(c) => write!(f, "the name contains `{c}`; paths are not allowed"),
            NameError::ControlCharacter(c) => write!(
                f,
                "the name contains the control character U+{:04X}",
                u32::from(*c)
            ),
            NameError::TrailingSpaceOrDot => write!(f, "the name ends with a space or a `.`"),
        }
    }
}

/// Checks a name against every rule; the first rule broken is the error.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(NameError::DotOrDotDot);
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\')) {
        return Err(NameError::Separator(c));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::ControlCharacter(c));
    }
    if name.ends_with([' ', '.']) {
        return Err(NameError::TrailingSpaceOrDot);
    }
    Ok(())
}

/// What the names of backups made without a name start with, as LiteGraph names them.
pub const BACKUP_PREFIX: &str = "litegraph-backup";

/// What the names of the safety backups taken before a restore start with.
pub const SAFETY_PREFIX: &str = "pre-restore";

/// A name the policy chooses: `<prefix>-YYYYMMDD-HHMMSS.db` in UTC. `attempt` 1 is that
/// name; later attempts (when a backup made in the same second already holds it) add `-2`,
/// `-3`, ... before the extension.
pub fn timestamped_name(prefix: &str, now: Datetime, attempt: u32) -> String {
    let Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    } = Civil::from_unix_seconds(now.seconds);
    let stamp = format!("{year:04}{month:02}{day:02}-{hour:02}{minute:02}{second:02}");
    if attempt <= 1 {
        format!("{prefix}-{stamp}.db")
    } else {
        format!("{prefix}-{stamp}-{attempt}.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "x.db",
            "nightly backup.db",
            "litegraph-backup-20250527-033110.db",
            "a..b",
            "日本語.db",
            "no-extension",
        ] {
            assert_eq!(check(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn refuses_each_rule_with_its_reason() {
        let long = "a".repeat(256);
        let cases: [(&str, NameError); 12] = [
            ("", NameError::Empty),
            (&long, NameError::TooLong(256)),
            (".", NameError::DotOrDotDot),
            ("..", NameError::DotOrDotDot),
            (".hidden.db", NameError::LeadingDot),
            ("../x.db", NameError::LeadingDot),
            ("a/b.db", NameError::Separator('/')),
            ("/etc/passwd", NameError::Separator('/')),
            ("a\\b.db", NameError::Separator('\\')),
            ("a\0b", NameError::ControlCharacter('\0')),
            ("a\nb", NameError::ControlCharacter('\n')),
            ("x.db ", NameError::TrailingSpaceOrDot),
        ];
        for (name, expected) in cases {
            assert_eq!(check(name), Err(expected), "{name:?}");
        }
        assert_eq!(check("x."), Err(NameError::TrailingSpaceOrDot));
        assert_eq!(check("a\u{7f}"), Err(NameError::ControlCharacter('\u{7f}')));
        assert_eq!(check("a\u{85}"), Err(NameError::ControlCharacter('\u{85}')));
    }

    #[test]
    fn length_limit_counts_bytes_not_characters() {
        let at_limit = "é".repeat(127) + "x"; // 255 bytes
        assert_eq!(check(&at_limit), Ok(()));
        let over = "é".repeat(128); // 256 bytes, 128 characters
        assert_eq!(check(&over), Err(NameError::TooLong(256)));
    }

    #[test]
    fn default_name_is_utc_timestamp() {
        // 2025-05-27T03:31:10Z
        let now = Datetime {
            seconds: 1_748_316_670,
            nanoseconds: 904_886_000,
        };
        assert_eq!(
            timestamped_name(BACKUP_PREFIX, now, 1),
            "litegraph-backup-20250527-033110.db"
        );
        assert_eq!(
            timestamped_name(BACKUP_PREFIX, now, 2),
            "litegraph-backup-20250527-033110-2.db"
        );
        assert_eq!(
            timestamped_name(SAFETY_PREFIX, now, 1),
            "pre-restore-20250527-033110.db"
        );
    }

    proptest! {
        /// Whatever passes the rules is exactly one ordinary path component: joined to a
        /// directory it names an entry of that directory and nothing else.
        #[test]
        fn accepted_names_never_leave_the_directory(name in any::<String>()) {
            if check(&name).is_ok() {
                let components: Vec<_> = Path::new(&name).components().collect();
                prop_assert_eq!(components.len(), 1);
                prop_assert_eq!(components[0], Component::Normal(name.as_ref()));
                let joined = Path::new("/backups").join(&name);
                prop_assert_eq!(joined.parent(), Some(Path::new("/backups")));
                prop_assert!(!name.starts_with('.'));
            }
        }

        /// Names built to look like escapes are refused, however they are dressed up.
        #[test]
        fn traversal_shapes_are_refused(
            prefix in "[a-z.]{0,4}",
            separator in prop::sample::select(vec!["/", "\\", "\0", "\n", "\r", "\t"]),
            suffix in "[a-z.]{0,4}",
        ) {
            let name = format!("{prefix}{separator}{suffix}");
            prop_assert!(check(&name).is_err(), "{:?} was accepted", name);
        }

        /// Every name with a forbidden character anywhere is refused.
        #[test]
        fn forbidden_characters_are_refused_anywhere(
            head in "[a-zA-Z0-9 _-]{0,20}",
            bad in prop_oneof![
                prop::char::range('\0', '\u{1f}'),
                prop::char::range('\u{7f}', '\u{9f}'),
                Just('/'),
                Just('\\'),
            ],
            tail in "[a-zA-Z0-9_-]{1,20}",
        ) {
            let name = format!("x{head}{bad}{tail}");
            prop_assert!(check(&name).is_err(), "{:?} was accepted", name);
        }

        /// Default names always pass the rules.
        #[test]
        fn default_names_pass_the_rules(seconds in 0u64..253_402_300_800, attempt in 1u32..1000) {
            for prefix in [BACKUP_PREFIX, SAFETY_PREFIX] {
                let name = timestamped_name(prefix, Datetime { seconds, nanoseconds: 0 }, attempt);
                prop_assert_eq!(check(&name), Ok(()));
            }
        }
    }
}
