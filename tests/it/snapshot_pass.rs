//! The snapshot's copy, page for page in one read transaction (issue 13): whatever the
//! source's page size, journal mode, auto-vacuum or size, a backup passes
//! `integrity_check`, opens without leaving `-wal`/`-shm` and equals a `step(-1)` copy
//! table by table.
