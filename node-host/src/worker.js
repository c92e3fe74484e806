// The worker thread that runs the policy component, so that a long copy or hash never stalls
// the event loop of the thread that asked. It loads the component once and runs each call in
// a fresh instance with fresh capabilities, then ends the operation: the snapshot's
// connections closed (a prepared restore rolled back) and the temporaries left removed.
//
// The guest's own computing time is published in `workerData.clock` (guest-clock.js; the
// service stops this worker when the guest runs over its limit).

import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

import { openBackupDir } from './backup-dir.js';
import { Budget, chargedImports } from './budget.js';
import { loadPrepared, prepareComponent } from './component.js';
import { budgetExceeded, endCall, startCall, timedImports } from './guest-clock.js';
import { ERROR_TAGS, WitError } from './errors.js';
import { createRemote } from './remote.js';
import { createSnapshot } from './snapshot.js';
import { createStore } from './store.js';

/** The exports the service may call, by name. */
export const EXPORTS = ['create', 'list', 'read', 'exists', 'delete', 'verify', 'restore', 'drill', 'details', 'prune'];

if (parentPort) await serve(workerData);

async function serve({
  database,
  backups,
  component,
  prepared: given,
  busyTimeoutMs,
  memoryBytes,
  staleTemporaryMs,
  only,
  clock: clockBuffer,
}) {
  // The service's read-only worker is handed the exports it may run and refuses the others.
  const allowed = only ?? EXPORTS;
  const clock = new BigInt64Array(clockBuffer);
  let prepared;
  let loaded;
  let dir;
  try {
    // Transpiled and compiled by the first worker; a worker started after one was stopped
    // is handed the same, ready.
    prepared = given ?? (await prepareComponent(component, { memoryBytes }));
    loaded = await loadPrepared(prepared);
    // As the Rust CLI does: the backup directory (and its parents) made when missing.
    fs.mkdirSync(backups, { recursive: true });
    dir = openBackupDir(backups, {
      database,
      onTemporary: (name) => parentPort.postMessage({ type: 'temporary', name }),
      staleTemporaryMs,
    });
  } catch (error) {
    const failure = error instanceof WitError ? describe(error) : { tag: 'host', detail: error.message };
    parentPort.postMessage({ type: 'failed', error: failure });
    return;
  }
  const snapshot = createSnapshot({ database, busyTimeoutMs, dir });
  const store = createStore(dir);
  parentPort.postMessage({
    type: 'ready',
    component: { path: loaded.path, length: loaded.length, sha256: loaded.sha256 },
    backups: dir.path,
    prepared: given ? undefined : prepared,
  });

  parentPort.on('message', ({ id, method, args }) => {
    let answer;
    try {
      answer = { type: 'answer', id, value: call(method, args) };
    } catch (error) {
      answer = { type: 'answer', id, error: describe(error) };
    }
    parentPort.postMessage(answer);
  });

  /** One export call in a fresh instance, under a fresh budget; the operation ended after. */
  function call(method, args) {
    if (!allowed.includes(method)) {
      throw new TypeError(`not an export of the backup service${only ? "'s read-only worker" : ''}: ${method}`);
    }
    const budget = new Budget({
      onExceeded(why) {
        budgetExceeded(clock);
        parentPort.postMessage({ type: 'exceeded', why });
      },
    });
    const charged = chargedImports(budget, { store, snapshot });
    const timed = (imports) => timedImports(clock, imports, () => budget.entries);
    startCall(clock);
    try {
      const backup = loaded.instantiate({
        store: timed(charged.store),
        snapshot: timed(charged.snapshot),
        remote: timed(createRemote()),
      });
      return backup[method](...args);
    } finally {
      endCall(clock);
      endOperation();
    }
  }

  /** Never fails the call it ends: what it could not undo is reported as a warning. */
  function endOperation() {
    for (const end of [() => snapshot.endOperation(), () => dir.endOperation()]) {
      try {
        end();
      } catch (error) {
        process.emitWarning(`litegraph-backup: ending the operation: ${error.message}`);
      }
    }
  }
}

/** Whether `error` is the WIT `error` variant an export returned as `err`. */
function isVariant(error) {
  return (
    error !== null &&
    typeof error === 'object' &&
    !(error instanceof Error) &&
    typeof error.tag === 'string' &&
    Object.hasOwn(ERROR_TAGS, error.tag)
  );
}

/** What the service needs to make a BackupError of `error`. */
function describe(error) {
  if (isVariant(error)) return { tag: error.tag, detail: error.val };
  if (error instanceof WitError) return { tag: error.tag, detail: error.payload.val };
  if (error instanceof WebAssembly.RuntimeError || error instanceof WebAssembly.LinkError) {
    const message = error.message.startsWith('wasm trap') ? error.message : `wasm trap: ${error.message}`;
    return { tag: 'guest', detail: message };
  }
  // A host fault (a bug, or an import that failed outside its contract) that surfaced as a
  // trap of the guest: reported as the guest's failure, with what happened.
  return { tag: 'guest', detail: String(error?.message ?? error), stack: error?.stack };
}
