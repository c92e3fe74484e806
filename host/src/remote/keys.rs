//! The host's own check of every object key the guest hands in, whatever the guest decided
//! (wit/remote.wit states the rule): a key can only name an object under the target's root.

use object_store::path::Path;

use crate::bindings::Error;

/// The longest key accepted, in bytes (S3's own limit).
const MAX_KEY_BYTES: usize = 1024;

/// Checks `key` against the contract's rules and makes it an object_store path.
pub(crate) fn object_path(key: &str) -> Result<Path, Error> {
    check(key, false)?;
    Path::parse(key).map_err(|e| refused(key, &e.to_string()))
}

/// The directory part of a listing prefix (everything up to its last `/`) as a path: what
/// object_store lists under, by whole segments. An empty prefix is the target's root.
pub(crate) fn listing_path(prefix: &str) -> Result<Path, Error> {
    check(prefix, true)?;
    let directory = prefix.rfind('/').map_or("", |end| &prefix[..end]);
    Path::parse(directory).map_err(|e| refused(prefix, &e.to_string()))
}

/// The rules; a listing prefix may be empty and may end with `/` or mid-segment.
fn check(key: &str, is_prefix: bool) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(refused(key, "longer than 1024 bytes"));
    }
    if key.starts_with('/') {
        return Err(refused(key, "starts with /"));
    }
    if key
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(refused(key, "has a control character"));
    }
    let mut segments: Vec<&str> = key.split('/').collect();
    if is_prefix {
        // The last segment is a partial name: "manifests/" and "data/x" both list.
        segments.pop();
    }
    for segment in segments {
        match segment {
            "" => return Err(refused(key, "has an empty segment")),
            "." | ".." => return Err(refused(key, "has a . or .. segment")),
            _ => {}
        }
    }
    if !is_prefix && key.is_empty() {
        return Err(refused(key, "is empty"));
    }
    Ok(())
}

fn refused(key: &str, why: &str) -> Error {
    let shown: String = key.chars().take(80).collect();
    Error::NotPermitted(format!("object key {shown:?} {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_are_refused() {
        let long = "k".repeat(1025);
        for key in [
            "",
            "/etc/passwd",
            "a//b",
            "a/../b",
            "..",
            ".",
            "a/.",
            "a/",
            "a\nb",
            "a\0b",
            "a\u{2028}b",
            &long,
        ] {
            assert!(
                matches!(object_path(key), Err(Error::NotPermitted(_))),
                "{key:?}"
            );
        }
        for key in [
            "manifests/x.json",
            "data/x.db/2026-11-30T21:00:00.123456789Z",
            "..x",
        ] {
            assert_eq!(object_path(key).expect(key).as_ref(), key);
        }
    }

    #[test]
    fn listing_prefixes_list_by_their_directory() {
        assert_eq!(listing_path("").expect("root").as_ref(), "");
        assert_eq!(
            listing_path("manifests/").expect("dir").as_ref(),
            "manifests"
        );
        assert_eq!(
            listing_path("data/x.db/2026").expect("partial").as_ref(),
            "data/x.db"
        );
        for prefix in ["/x", "../", "a//b", "a/../"] {
            assert!(listing_path(prefix).is_err(), "{prefix:?}");
        }
    }
}
