// The two kinds of error the Node host deals in.
//
// `WitError` is what a capability (an import the guest calls) throws: jco turns a thrown
// value with an own `payload` property into the WIT `error` variant the guest receives;
// anything else thrown from an import (a plain `Error`) becomes a trap, which is reserved
// for host bugs.
//
// `BackupError` is what the service (the main-thread API) rejects with: the component's
// answer, one `error` variant, as a JavaScript error.

/** The cases of the WIT `error` variant (wit/types.wit), and whether each carries text. */
export const ERROR_TAGS = Object.freeze({
  'invalid-name': true,
  'not-found': false,
  exist: false,
  'not-permitted': true,
  'no-database': true,
  busy: false,
  corrupt: true,
  io: true,
  'invalid-argument': true,
});

/** A WIT `error` thrown by an import: `payload` is the variant as jco lowers it. */
export class WitError extends Error {
  constructor(tag, message) {
    if (!Object.hasOwn(ERROR_TAGS, tag)) {
      // A host bug: let it trap rather than hand the guest an unknown case.
      throw new TypeError(`not a WIT error case: ${tag}`);
    }
    const carries = ERROR_TAGS[tag];
    const text = carries ? String(message ?? '') : undefined;
    super(text ? `${tag}: ${text}` : tag);
    this.name = 'WitError';
    this.tag = tag;
    this.payload = carries ? { tag, val: text } : { tag };
  }
}

/** `new WitError(tag, message)`, for `throw witError(...)`. */
export function witError(tag, message) {
  return new WitError(tag, message);
}

/**
 * Maps a Node filesystem error to the WIT error, as the Rust host's `failed` does:
 * ENOENT is `not-found`, EEXIST `exist`, anything else `io` with text a person can act on.
 */
export function fsError(action, path, error) {
  if (error instanceof WitError) return error;
  switch (error?.code) {
    case 'ENOENT':
      return new WitError('not-found');
    case 'EEXIST':
      return new WitError('exist');
    default:
      return new WitError('io', `cannot ${action} ${path}: ${error?.message ?? error}`);
  }
}

/**
 * How the Rust host words each error (host/src/runtime/mod.rs `Error`'s Display), so that
 * both hosts say the same thing.
 */
const WORDING = {
  'invalid-name': (detail) => `invalid backup name: ${detail}`,
  'not-found': () => 'no such backup',
  exist: () => 'a backup of that name exists already',
  'not-permitted': (detail) => `refused by the host: ${detail}`,
  busy: () =>
    'the database stayed locked (by a writer, or by another create or restore) for longer than the busy timeout',
  guest: (detail) => `the policy component failed: ${detail}`,
};

/**
 * What the service rejects with. `tag` is the component's `error` case (`invalid-name`,
 * `not-found`, `exist`, `not-permitted`, `no-database`, `busy`, `corrupt`, `io`,
 * `invalid-argument`) and `detail` its text when it carries one; or `guest` when the policy
 * component itself failed (it trapped, or ran over its time), or `host` when this host
 * failed outside the component (the worker died, the service was closed). The message is
 * worded as the Rust host words it.
 */
export class BackupError extends Error {
  constructor(tag, detail, options) {
    const word = WORDING[tag];
    super(word ? word(detail) : detail || tag, options);
    this.name = 'BackupError';
    this.tag = tag;
    this.detail = detail;
  }

  /** The error for a WIT `error` variant value (`{ tag, val? }`). */
  static fromVariant(variant) {
    return new BackupError(variant.tag, variant.val);
  }

  /** Whether the caller caused this error (Rust's `is_callers`): a refusal, not a failure. */
  get isCallers() {
    return ['invalid-name', 'not-found', 'exist', 'invalid-argument'].includes(this.tag);
  }
}
