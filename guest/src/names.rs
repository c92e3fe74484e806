//! Which names a backup may have, and the default one.
//!
//! A backup name is a single, ordinary file name: it can never name a directory, step out of
//! the backup directory, hide among our internal files, or look like another name. The
//! rules, in the order they are checked (the first one broken is the one reported):
//!
//! 1. not empty;
//! 2. at most 255 bytes of UTF-8 (the usual `NAME_MAX`);
//! 3. not `.`;
//! 4. no `..` path component (`..`, `../x.db`, `a/../b`, `..\x.db`): it would step out of
//!    the backup directory;
//! 5. no `/` or `\` (no paths, on any platform);
//! 6. no leading `.` (reserved for internal files: temporaries and metadata);
//! 7. no NUL or other control character (U+0000-U+001F, U+007F-U+009F), nor the line and
//!    paragraph separators U+2028 and U+2029 (they break a name across lines as `\n` does);
//! 8. no bidirectional control (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069): they
//!    make a name display in another order than it is spelt;
//! 9. no other invisible format character (Unicode category Cf: the soft hyphen U+00AD,
//!    zero-width U+200B-U+200D, the word joiner U+2060, the byte order mark U+FEFF, ...);
//! 10. in Unicode normalization form C (NFC), so that two different files never look like
//!     one `é.db`;
//! 11. no trailing space or `.` (Windows drops them silently, so two names would collide).
//!
//! The traversal and path rules come before the leading-dot rule so that `../x.db` is
//! refused for what it tries to do, not for how it starts.

use crate::clock::Civil;
use crate::litegraph::backup::types::Datetime;
use unicode_normalization::is_nfc;

/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a name was refused. `Display` gives the sentence users see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong(usize),
    CurrentDirectory,
    Traversal,
    Separator(char),
    LeadingDot,
    ControlCharacter(char),
    BidirectionalControl(char),
    InvisibleCharacter(char),
    NotNfc,
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
            NameError::CurrentDirectory => {
                write!(f, "`.` is the backup directory itself, not a file name")
            }
            NameError::Traversal => {
                write!(f, "the name steps out of the backup directory (`..`)")
            }
            NameError::Separator(c) => write!(f, "the name contains `{c}`; paths are not allowed"),
            NameError::LeadingDot => {
                write!(f, "names starting with `.` are reserved for internal files")
            }
            NameError::ControlCharacter(c) => write!(
                f,
                "the name contains the control character {}",
                code_point(*c)
            ),
            NameError::BidirectionalControl(c) => write!(
                f,
                "the name contains the bidirectional control {}, which makes it display \
                 in another order than it is spelt",
                code_point(*c)
            ),
            NameError::InvisibleCharacter(c) => write!(
                f,
                "the name contains the invisible format character {}",
                code_point(*c)
            ),
            NameError::NotNfc => write!(
                f,
                "the name is not in Unicode NFC (composed) form, so another name could look \
                 the same; compose it (NFC) first"
            ),
            NameError::TrailingSpaceOrDot => write!(f, "the name ends with a space or a `.`"),
        }
    }
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Checks a name against every rule; the first rule broken is the error.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if name == "." {
        return Err(NameError::CurrentDirectory);
    }
    if name.split(['/', '\\']).any(|component| component == "..") {
        return Err(NameError::Traversal);
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\')) {
        return Err(NameError::Separator(c));
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    if let Some(c) = name.chars().find(|&c| is_control_character(c)) {
        return Err(NameError::ControlCharacter(c));
    }
    if let Some(c) = name.chars().find(|c| is_bidirectional_control(*c)) {
        return Err(NameError::BidirectionalControl(c));
    }
    if let Some(c) = name.chars().find(|c| is_format_character(*c)) {
        return Err(NameError::InvisibleCharacter(c));
    }
    if !is_nfc(name) {
        return Err(NameError::NotNfc);
    }
    if name.ends_with([' ', '.']) {
        return Err(NameError::TrailingSpaceOrDot);
    }
    Ok(())
}

/// The explicit directional formatting characters and marks (Unicode's
/// `Bidi_Control` property).
pub fn is_bidirectional_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode's general category Cf (format characters, as of Unicode 15), which draw nothing
/// (or, like the soft hyphen, only at a line break). Written out by hand: the table is
/// short and stable, and a general-category crate would carry every other table too.
const FORMAT_CHARACTERS: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is a control character, or a line or paragraph separator (which end a line
/// wherever a name is shown, as `\n` does).
pub fn is_control_character(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `c` is a format character (general category Cf).
pub fn is_format_character(c: char) -> bool {
    FORMAT_CHARACTERS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
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

/// The prefix of a name [`timestamped_name`] makes (`<prefix>-YYYYMMDD-HHMMSS[-n].db`), or
/// `None` for any other name: how a backup with no record of its origin is told apart from
/// one a person named.
pub fn timestamped_prefix(name: &str) -> Option<&'static str> {
    let (prefix, rest) = [BACKUP_PREFIX, SAFETY_PREFIX]
        .into_iter()
        .find_map(|prefix| Some((prefix, name.strip_prefix(prefix)?.strip_prefix('-')?)))?;
    let rest = rest.strip_suffix(".db")?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let (date, rest) = rest.split_at_checked(8)?;
    let rest = rest.strip_prefix('-')?;
    let (time, attempt) = rest.split_at_checked(6)?;
    let attempt_ok = match attempt.strip_prefix('-') {
        None => attempt.is_empty(),
        Some(n) => !n.starts_with('0') && digits(n, n.len()) && !n.is_empty(),
    };
    (digits(date, 8) && digits(time, 6) && attempt_ok).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamped_names_are_told_from_chosen_ones() {
        let at = Datetime {
            seconds: 1_748_316_670,
            nanoseconds: 0,
        };
        for prefix in [BACKUP_PREFIX, SAFETY_PREFIX] {
            for attempt in [1, 2, 17] {
                let name = timestamped_name(prefix, at, attempt);
                assert_eq!(timestamped_prefix(&name), Some(prefix), "{name}");
            }
        }
        for chosen in [
            "nightly.db",
            "litegraph-backup.db",
            "litegraph-backup-20250527-033110.db.bak",
            "litegraph-backup-20250527-033110-01.db",
            "litegraph-backup-20250527-033110-.db",
            "litegraph-backup-2025052-033110.db",
            "litegraph-backup-20250527-0331101.db",
            "litegraph-backup-2025O527-033110.db",
            "pre-restore-20250527-033110 copy.db",
            "my-litegraph-backup-20250527-033110.db",
        ] {
            assert_eq!(timestamped_prefix(chosen), None, "{chosen}");
        }
    }
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
            (".", NameError::CurrentDirectory),
            ("..", NameError::Traversal),
            (".hidden.db", NameError::LeadingDot),
            ("../x.db", NameError::Traversal),
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
        // Regression: the line separator was accepted (it is no Cc nor Cf character).
        assert_eq!(
            check("a\u{2028}b.db"),
            Err(NameError::ControlCharacter('\u{2028}'))
        );
        assert_eq!(
            check("a\u{2029}b.db"),
            Err(NameError::ControlCharacter('\u{2029}'))
        );
    }

    // Item 14: `../x.db` was refused for its leading dot, which hid what it tried to do.
    #[test]
    fn traversal_is_named_before_the_leading_dot() {
        for name in [
            "..", "../x.db", "..\\x.db", "a/../b", "a\\..\\b", "x/..", "../..",
        ] {
            assert_eq!(check(name), Err(NameError::Traversal), "{name:?}");
        }
        assert_eq!(
            NameError::Traversal.to_string(),
            "the name steps out of the backup directory (`..`)"
        );
        // Dots that are not a whole component are no traversal.
        assert_eq!(check("./x.db"), Err(NameError::Separator('/')));
        assert_eq!(check("..x.db"), Err(NameError::LeadingDot));
        assert_eq!(check("a/..b"), Err(NameError::Separator('/')));
    }

    // Item 14: names with bidirectional controls or invisible characters were accepted, so
    // `x\u{202E}bd.exe` could display as another name.
    #[test]
    fn refuses_bidirectional_controls_and_invisible_characters() {
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let name = format!("x{c}bd.db");
            assert_eq!(
                check(&name),
                Err(NameError::BidirectionalControl(c)),
                "{name:?}"
            );
        }
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            let name = format!("a{c}b.db");
            assert_eq!(
                check(&name),
                Err(NameError::InvisibleCharacter(c)),
                "{name:?}"
            );
        }
        assert!(
            NameError::BidirectionalControl('\u{202E}')
                .to_string()
                .contains("U+202E")
        );
    }

    // Item 14: `e` + U+0301 and `é` (U+00E9) were two files that look like one `é.db`.
    #[test]
    fn refuses_names_not_in_nfc() {
        assert_eq!(check("\u{e9}.db"), Ok(()));
        assert_eq!(check("e\u{301}.db"), Err(NameError::NotNfc));
        assert_eq!(
            check("\u{212B}ngstr\u{f6}m.db"),
            Err(NameError::NotNfc),
            "Angstrom sign"
        );
        assert_eq!(
            check("\u{1100}\u{1161}.db"),
            Err(NameError::NotNfc),
            "conjoining jamo"
        );
        assert_eq!(check("\u{AC00}.db"), Ok(()));
    }

    #[test]
    fn every_bidirectional_control_is_a_format_character() {
        for c in ['\u{061C}', '\u{200E}', '\u{200F}']
            .into_iter()
            .chain('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
        {
            assert!(
                is_bidirectional_control(c) && is_format_character(c),
                "{c:?}"
            );
        }
        for c in ['a', ' ', '\u{e9}', '\u{301}', '\u{3000}', '\u{1F600}'] {
            assert!(!is_format_character(c), "{c:?}");
        }
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

    /// Any format character (general category Cf), bidirectional controls included.
    fn format_character() -> impl Strategy<Value = char> {
        prop::sample::select(FORMAT_CHARACTERS.to_vec())
            .prop_flat_map(|(first, last)| prop::char::range(first, last))
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
                format_character(),
            ],
            tail in "[a-zA-Z0-9_-]{1,20}",
        ) {
            let name = format!("x{head}{bad}{tail}");
            prop_assert!(check(&name).is_err(), "{:?} was accepted", name);
        }

        /// No accepted name holds a control, bidirectional control or invisible character,
        /// and every accepted name is in NFC: drawn from text rich in exactly those.
        #[test]
        fn accepted_names_are_visible_and_composed(
            name in prop::collection::vec(
                prop_oneof![
                    4 => prop::char::range('a', 'z'),
                    1 => format_character(),
                    1 => prop::sample::select(vec!['\u{301}', '\u{308}', '\u{327}', '\u{1161}', '\u{11A8}']),
                    1 => prop::sample::select(vec!['e', 'A', '\u{212B}', '\u{1100}', '\u{e9}', '\u{ac00}']),
                    1 => any::<char>(),
                ],
                1..16,
            ).prop_map(|chars| chars.into_iter().collect::<String>()),
        ) {
            if check(&name).is_ok() {
                prop_assert!(!name.chars().any(|c| is_control_character(c) || is_format_character(c)), "{:?}", name);
                prop_assert!(is_nfc(&name), "{:?}", name);
            }
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
