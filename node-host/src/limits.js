// The limits every guest call runs under (the Rust host's `Limits`, host/src/runtime).

/** The guest's own computing time per operation; time in host capabilities does not count. */
export const DEFAULT_GUEST_TIME_MS = 5_000;

/**
 * The most linear memory the guest may have. The Rust host allows 64 MiB plus 2 KiB per
 * entry of the largest listing; a wasm memory's maximum is fixed in the module, so this host
 * fixes it once: 256 MiB, room for a listing of about 96,000 backups.
 */
export const DEFAULT_MEMORY_BYTES = 256 << 20;
