//! The policy's filename rules and metadata records, on arbitrary bytes: an accepted name is
//! always one ordinary file name inside the directory, and no record, however mangled, makes
//! the parser panic or read back differently from what was written.

#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use litegraph_backup_guest::metadata::Metadata;
use litegraph_backup_guest::names;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data)
        && names::check(name).is_ok()
    {
        let components: Vec<Component<'_>> = Path::new(name).components().collect();
        assert_eq!(components, [Component::Normal(name.as_ref())], "{name:?}");
        assert!(name.len() <= names::MAX_NAME_BYTES, "{name:?}");
        assert!(!name.starts_with('.'), "{name:?}");
        assert!(!name.contains(['/', '\\']), "{name:?}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(!name.ends_with([' ', '.']), "{name:?}");
        assert_eq!(
            Path::new("/backups").join(name).parent(),
            Some(Path::new("/backups"))
        );
    }
    if let Some(record) = Metadata::decode(data) {
        assert_eq!(Metadata::decode(&record.encode()), Some(record));
    }
});
