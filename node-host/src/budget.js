// What one operation may ask of the host, besides the guest's own time (host/src/budget.rs):
// the guest's deadline counts only its computing time, so without a budget a hostile guest
// could loop on cheap host calls forever, take snapshot after snapshot until the disk is
// full, or have the host hash the same large file again and again. Every legitimate
// operation stays far inside these limits.

import { WitError } from './errors.js';

/** Host calls of any kind in one operation (listing 1,000 backups takes about 3,000). */
const MAX_CALLS = 200_000;
/** Host calls a listing may need per entry it returns, with room to spare. */
const CALLS_PER_LISTED_ENTRY = 8;
/** Guest computing time per listed entry, in milliseconds (200 us). */
export const GUEST_MS_PER_LISTED_ENTRY = 0.2;
/** Snapshots in one operation: a create takes one, a restore one (its safety backup). */
const MAX_SNAPSHOTS = 1;
/** Digests, checks, restores or drills of one file in one operation. */
const MAX_HEAVY_PER_FILE = 2;
/** Bytes of metadata written in one operation. */
const MAX_WRITTEN = 64 << 20;

/** One operation's spending. */
export class Budget {
  calls = 0;
  allowance = 0;
  /** The most entries a listing of this operation returned. */
  entries = 0;
  snapshots = 0;
  written = 0;
  heavy = new Map();
  /** Why the budget was exceeded, once it was. */
  exceeded;
  #onExceeded;

  /**
   * `onExceeded(why)` hears, once, that the budget was exceeded: the guest is then to be
   * stopped at the next deadline check, as the Rust host stops it.
   */
  constructor({ onExceeded = () => {} } = {}) {
    this.#onExceeded = onExceeded;
  }

  #spend(charge) {
    this.calls += 1;
    const limit = MAX_CALLS + this.allowance;
    const over = this.calls > limit ? `more than ${limit} host calls` : charge?.();
    if (over === undefined) return;
    const why = `the policy exceeded its budget for one operation: ${over}`;
    if (this.exceeded === undefined) {
      this.exceeded = why;
      this.#onExceeded(why);
    }
    throw new WitError('not-permitted', why);
  }

  /** Any host call. */
  call() {
    this.#spend();
  }

  /** A listing of `entries` files: more calls and guest time allowed (the largest counts). */
  listed(entries) {
    this.allowance = Math.max(this.allowance, CALLS_PER_LISTED_ENTRY * entries);
    this.entries = Math.max(this.entries, entries);
  }

  /** A snapshot of the live database. */
  snapshot() {
    this.#spend(() => (++this.snapshots > MAX_SNAPSHOTS ? `more than ${MAX_SNAPSHOTS} snapshot` : undefined));
  }

  /** A digest, check, restore or drill (`kind`) of `name`. */
  heavyCall(kind, name) {
    this.#spend(() => {
      const key = `${kind}\0${name}`;
      const count = (this.heavy.get(key) ?? 0) + 1;
      this.heavy.set(key, count);
      return count > MAX_HEAVY_PER_FILE
        ? `${kind} of ${JSON.stringify(name)} more than ${MAX_HEAVY_PER_FILE} times`
        : undefined;
    });
  }

  /** A metadata write of `bytes`. */
  write(bytes) {
    this.#spend(() => ((this.written += bytes) > MAX_WRITTEN ? `more than ${MAX_WRITTEN} bytes written` : undefined));
  }
}

/**
 * The import objects with the budget charged before each call, as the Rust host charges
 * them: `{ store, snapshot }` in, the same shapes out. Once the budget is exceeded, every
 * call is refused with `not-permitted`.
 */
export function chargedImports(budget, { store, snapshot }) {
  const charged = (charge, fn) =>
    (...args) => {
      charge(...args);
      return fn(...args);
    };
  return {
    store: {
      now: () => {
        // Refused or not, the time is harmless; the call still counts.
        try {
          budget.call();
        } catch {
          // Counted.
        }
        return store.now();
      },
      list: () => {
        budget.call();
        const names = store.list();
        budget.listed(names.length);
        return names;
      },
      stat: charged(() => budget.call(), store.stat),
      digests: charged((name) => budget.heavyCall('Digests', name), store.digests),
      read: charged(() => budget.call(), store.read),
      write: charged((_, contents) => budget.write(contents.length), store.write),
      renameNoreplace: charged(() => budget.call(), store.renameNoreplace),
      remove: charged(() => budget.call(), store.remove),
    },
    snapshot: {
      take: charged(() => budget.snapshot(), snapshot.take),
      takeForRestore: charged(() => budget.snapshot(), snapshot.takeForRestore),
      check: charged((name) => budget.heavyCall('Check', name), snapshot.check),
      drill: charged((name) => budget.heavyCall('Drill', name), snapshot.drill),
      restore: charged((name) => budget.heavyCall('Restore', name), snapshot.restore),
    },
  };
}

