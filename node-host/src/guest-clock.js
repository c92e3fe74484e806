// The guest's own computing time, shared between the worker that runs the component and the
// service's watchdog on the caller's thread: a BigInt64Array over a SharedArrayBuffer, in
// nanoseconds of process.hrtime (one monotonic clock for every thread of the process).

/** The slots of the clock. */
export const CLOCK = Object.freeze({
  /** When the current call started; 0 between calls. */
  CALL_START: 0,
  /** Time spent in host imports during the current call. */
  IMPORT_TOTAL: 1,
  /** When the host import running now started; 0 while the guest (or nothing) runs. */
  IMPORT_START: 2,
  /** The most entries a listing of the current call returned (they earn extra time). */
  LISTED: 3,
  /** When the current call exceeded its budget; 0 while it has not. */
  EXCEEDED_AT: 4,
});

/** A new clock's shared memory. */
export function newClockBuffer() {
  return new SharedArrayBuffer(Object.keys(CLOCK).length * 8);
}

/** Marks the start of a call (worker side). */
export function startCall(clock) {
  Atomics.store(clock, CLOCK.IMPORT_TOTAL, 0n);
  Atomics.store(clock, CLOCK.IMPORT_START, 0n);
  Atomics.store(clock, CLOCK.LISTED, 0n);
  Atomics.store(clock, CLOCK.EXCEEDED_AT, 0n);
  Atomics.store(clock, CLOCK.CALL_START, process.hrtime.bigint());
}

/** Marks the moment the running call exceeded its budget (worker side). */
export function budgetExceeded(clock) {
  Atomics.store(clock, CLOCK.EXCEEDED_AT, process.hrtime.bigint());
}

/** Marks the end of a call (worker side). */
export function endCall(clock) {
  Atomics.store(clock, CLOCK.CALL_START, 0n);
}

/**
 * Each function of an import object, with its time published as the host's, not the
 * guest's; `listed()` says the largest listing so far (worker side).
 */
export function timedImports(clock, imports, listed) {
  const wrapped = {};
  for (const [name, fn] of Object.entries(imports)) {
    wrapped[name] = (...args) => {
      const started = process.hrtime.bigint();
      Atomics.store(clock, CLOCK.IMPORT_START, started);
      try {
        return fn(...args);
      } finally {
        Atomics.add(clock, CLOCK.IMPORT_TOTAL, process.hrtime.bigint() - started);
        Atomics.store(clock, CLOCK.IMPORT_START, 0n);
        Atomics.store(clock, CLOCK.LISTED, BigInt(listed()));
      }
    };
  }
  return wrapped;
}

/**
 * The guest's own time in the running call, in milliseconds: the call's time so far, less
 * the host imports' (the watchdog's side). The instantiation and jco's glue count as the
 * guest's.
 */
export function guestMilliseconds(clock) {
  const started = Atomics.load(clock, CLOCK.CALL_START);
  if (started === 0n) return 0;
  const now = process.hrtime.bigint();
  const importStarted = Atomics.load(clock, CLOCK.IMPORT_START);
  const inImport = importStarted === 0n ? 0n : now - importStarted;
  return Number(now - started - Atomics.load(clock, CLOCK.IMPORT_TOTAL) - inImport) / 1e6;
}

/** The largest listing of the running call (the watchdog's side). */
export function listedEntries(clock) {
  return Number(Atomics.load(clock, CLOCK.LISTED));
}

/**
 * How long ago the running call exceeded its budget, in milliseconds; undefined when it has
 * not (or no call runs).
 */
export function exceededMilliseconds(clock) {
  if (Atomics.load(clock, CLOCK.CALL_START) === 0n) return undefined;
  const at = Atomics.load(clock, CLOCK.EXCEEDED_AT);
  if (at === 0n) return undefined;
  return Number(process.hrtime.bigint() - at) / 1e6;
}
