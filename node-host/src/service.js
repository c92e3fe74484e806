// The backup service for Node servers: the policy component in worker threads (worker.js),
// each call a Promise of the export's answer (as jco gives it: records with camelCase
// fields, u64 as BigInt) or a rejection with a BackupError.
//
// Two workers, each with the component compiled once and a fresh instance per call: the
// mutating exports (create, delete, verify, restore, drill, prune) run on the first, one at a
// time; the read-only ones (list, read, exists, details: what /health and the GET and HEAD
// routes use) on the second, so that they never wait behind a long create or restore. A
// read racing a create sees the backup published whole or not at all, as on the Rust host:
// temporaries are hidden from listings and a backup is published by link(2).
//
// The guest's own computing time is limited as the Rust host limits it (5 s per operation,
// plus 200 us per entry of the largest listing; time inside host capabilities does not
// count): each worker publishes, in its own shared memory, when its call started and how
// long it has spent in host imports, and a watchdog here terminates that worker when the
// guest has run over its limit. A fresh worker takes that lane's next call; the temporaries
// the stopped operation had created are removed here.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { STALE_TEMPORARY_MS, removeTemporaryFiles, sweepStaleTemporaries } from './backup-dir.js';
import { GUEST_MS_PER_LISTED_ENTRY } from './budget.js';
import { DEFAULT_GUEST_TIME_MS, DEFAULT_MEMORY_BYTES } from './limits.js';
import { BackupError } from './errors.js';
import { exceededMilliseconds, guestMilliseconds, listedEntries, newClockBuffer } from './guest-clock.js';


/**
 * The exports that only read: they run on the second worker, never queued behind the
 * mutating ones. Everything /health and the GET and HEAD routes call.
 */
export const READ_ONLY_EXPORTS = Object.freeze(['list', 'read', 'exists', 'details']);

/** The package directory, where `litegraph-backup.wasm` is looked for by default. */
const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** How often the watchdog looks at a running call (the Rust host's epoch tick). */
const WATCH_EVERY_MS = 10;
/**
 * How long a guest that exceeded its budget may go on (its calls refused) before it is
 * stopped: one that answers at once gives its answer, one that keeps asking is stopped.
 */
const EXCEEDED_GRACE_MS = 100;

/** Where the component is by default: LITEGRAPH_BACKUP_COMPONENT, or the package's own. */
export function defaultComponentPath() {
  return process.env.LITEGRAPH_BACKUP_COMPONENT
    ? path.resolve(process.env.LITEGRAPH_BACKUP_COMPONENT)
    : path.join(PACKAGE_DIR, 'litegraph-backup.wasm');
}

/**
 * Starts the backup service of the live database `database` (a SQLite file) with its backups
 * in `backups` (a directory, made when missing). `component` is the policy component file
 * (`litegraph-backup component --output FILE` writes it); `busyTimeoutMs` how long a
 * snapshot waits for the database's locks; `guestTimeMs` the guest's computing time per
 * operation; `memoryBytes` the most linear memory the guest may have; `staleTemporaryMs`
 * how old a temporary of a dead process must be to be taken for abandoned (10 s, the Rust
 * host's age). Resolves once the component is loaded in both workers, or rejects with a
 * BackupError. Abandoned temporaries are removed first: `service.swept` says how many.
 */
export async function createBackupService({
  database,
  backups,
  component = defaultComponentPath(),
  busyTimeoutMs,
  guestTimeMs = DEFAULT_GUEST_TIME_MS,
  memoryBytes = DEFAULT_MEMORY_BYTES,
  staleTemporaryMs = STALE_TEMPORARY_MS,
} = {}) {
  if (typeof database !== 'string' || database === '') throw new TypeError('createBackupService needs `database`, a path');
  if (typeof backups !== 'string' || backups === '') throw new TypeError('createBackupService needs `backups`, a path');
  const options = {
    database: path.resolve(database),
    backups: path.resolve(backups),
    component: path.resolve(component),
    busyTimeoutMs,
    memoryBytes,
    staleTemporaryMs,
  };
  const first = await startWorker(options, false);
  // The component as the first worker transpiled and compiled it, for the workers after.
  options.prepared = first.prepared;
  delete first.prepared;
  let reader;
  let swept;
  try {
    reader = await startWorker(options, true);
    // What a process killed mid-operation left (the directory exists: the worker made it).
    swept = sweepStaleTemporaries(first.backups, { staleAfterMs: staleTemporaryMs });
  } catch (error) {
    await first.worker.terminate();
    await reader?.worker.terminate();
    throw error instanceof BackupError
      ? error
      : new BackupError('host', `cannot remove abandoned temporaries in ${first.backups}: ${error.message}`, { cause: error });
  }
  return new BackupService(options, first, reader, guestTimeMs, swept);
}

/**
 * Starts a worker and waits until it has loaded the component; `readOnly`: the worker that
 * runs the read-only exports and refuses the others.
 */
function startWorker(options, readOnly) {
  const clock = newClockBuffer();
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { ...options, only: readOnly ? [...READ_ONLY_EXPORTS] : undefined, clock },
  });
  const temporaries = new Set();
  const running = { worker, clock: new BigInt64Array(clock), temporaries, stopped: false, readOnly };
  worker.on('message', (message) => {
    if (message?.type === 'temporary') temporaries.add(message.name);
  });
  // A worker that fails or ends between calls is replaced at the next call (an 'error'
  // event nobody listens to would end the caller's process).
  worker.on('error', () => {
    running.stopped = true;
  });
  worker.on('exit', () => {
    running.stopped = true;
  });
  return new Promise((resolve, reject) => {
    const failed = (error) => {
      worker.off('message', onMessage);
      worker.terminate();
      reject(error);
    };
    const onMessage = (message) => {
      if (message?.type === 'ready') {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        worker.unref();
        resolve(Object.assign(running, { component: message.component, backups: message.backups, prepared: message.prepared }));
      } else if (message?.type === 'failed') {
        failed(new BackupError(message.error.tag, message.error.detail));
      }
    };
    const onError = (error) => failed(new BackupError('host', `the service's worker failed to start: ${error.message}`, { cause: error }));
    const onExit = (code) => failed(new BackupError('host', `the service's worker exited (${code}) before it was ready`));
    worker.on('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

class BackupService {
  #options;
  #guestTimeMs;
  /**
   * The two lanes, each a worker and its queue: `write` runs the mutating exports, `read`
   * the read-only ones. `running` is the lane's worker, or a promise of the next one (after
   * one was stopped).
   */
  #lanes;
  #closed = false;
  #nextId = 0;

  constructor(options, running, reader, guestTimeMs, swept) {
    this.#options = options;
    this.#guestTimeMs = guestTimeMs;
    this.#lanes = {
      write: { readOnly: false, running, queue: Promise.resolve() },
      read: { readOnly: true, running: reader, queue: Promise.resolve() },
    };
    /** How many abandoned temporaries (of dead processes) the start removed. */
    this.swept = swept;
    /** The live database's path, resolved. */
    this.database = options.database;
    /** The backup directory's path, resolved (through symbolic links). */
    this.backups = running.backups;
    /** The component the service runs: `{ path, length, sha256 }` (uppercase hex). */
    this.component = running.component;
  }

  /** Backs up the live database now; `name` is optional (the policy names it then). */
  create(name) {
    return this.#call('create', [name ?? undefined]);
  }

  /** Every backup, as LiteGraph's BackupFile describes it, oldest first. */
  list() {
    return this.#call('list', []);
  }

  /** One backup's BackupFile. */
  read(name) {
    return this.#call('read', [name]);
  }

  /** Whether a backup of that name exists. */
  exists(name) {
    return this.#call('exists', [name]);
  }

  /** Deletes a backup and its metadata. */
  delete(name) {
    return this.#call('delete', [name]);
  }

  /** Checks a backup: its digests, and SQLite's quick_check (integrity_check when `full`). */
  verify(name, full = false) {
    return this.#call('verify', [name, Boolean(full)]);
  }

  /** Puts a backup's content into the live database, online, after a safety backup. */
  restore(name) {
    return this.#call('restore', [name]);
  }

  /** Restores a backup (the newest when no name) into a scratch database and checks it. */
  drill(name) {
    return this.#call('drill', [name ?? undefined]);
  }

  /** A backup with what the policy records beside it (origin, last verify and drill). */
  details(name) {
    return this.#call('details', [name]);
  }

  /** Removes the backups no retention rule keeps (`rules` as the WIT `retention` record). */
  prune(rules, dryRun = false) {
    return this.#call('prune', [rules, Boolean(dryRun)]);
  }

  /** Waits for the calls already made, then stops the workers. Later calls reject. */
  async close() {
    const lanes = Object.values(this.#lanes);
    if (this.#closed) {
      await Promise.all(lanes.map((lane) => lane.queue));
      return;
    }
    this.#closed = true;
    await Promise.all(
      lanes.map(async (lane) => {
        await lane.queue;
        const running = await Promise.resolve(lane.running).catch(() => undefined);
        await running?.worker.terminate();
      }),
    );
  }

  #call(method, args) {
    const name = args[0];
    const optional = method === 'create' || method === 'drill';
    if (method !== 'list' && method !== 'prune' && typeof name !== 'string' && !(optional && name === undefined)) {
      return Promise.reject(new TypeError(`${method} takes a backup name (a string)${optional ? ' or nothing' : ''}`));
    }
    if (this.#closed) return Promise.reject(new BackupError('host', 'the backup service is closed'));
    const lane = READ_ONLY_EXPORTS.includes(method) ? this.#lanes.read : this.#lanes.write;
    const answer = lane.queue.then(() => this.#run(lane, method, args));
    // The lane's queue goes on whatever this call's answer.
    lane.queue = answer.then(
      () => undefined,
      () => undefined,
    );
    return answer;
  }

  async #run(lane, method, args) {
    let running;
    try {
      running = await lane.running;
    } catch {
      running = undefined;
    }
    if (!running || running.stopped) {
      lane.running = startWorker(this.#options, lane.readOnly);
      running = await lane.running;
    }
    return this.#ask(running, method, args);
  }

  /** Sends one call to the worker and watches the guest's time until it answers. */
  #ask(running, method, args) {
    const { worker, clock, temporaries } = running;
    const id = this.#nextId++;
    temporaries.clear();
    worker.ref();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearInterval(watchdog);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        worker.unref();
      };
      const stop = (error) => {
        done();
        running.stopped = true;
        worker.terminate().finally(() => {
          // What the stopped operation created and had not published: removed here, as
          // its end would have removed it.
          for (const name of temporaries) removeTemporaryFiles(this.backups, name);
          reject(error);
        });
      };
      let exceeded;
      const onMessage = (message) => {
        if (message?.type === 'exceeded') exceeded = message.why;
        if (message?.type !== 'answer' || message.id !== id) return;
        done();
        if (message.error) reject(new BackupError(message.error.tag, message.error.detail));
        else resolve(message.value);
      };
      const onError = (error) => {
        stop(new BackupError('host', `the service's worker failed: ${error.message}`, { cause: error }));
      };
      const onExit = (code) => {
        stop(new BackupError('host', `the service's worker exited (${code}) during ${method}`));
      };
      const watchdog = setInterval(() => {
        if (exceededMilliseconds(clock) > EXCEEDED_GRACE_MS) {
          stop(new BackupError('guest', exceeded ?? 'the policy exceeded its budget for one operation'));
          return;
        }
        const used = guestMilliseconds(clock);
        const allowed = this.#guestTimeMs + listedEntries(clock) * GUEST_MS_PER_LISTED_ENTRY;
        if (used > allowed) {
          stop(
            new BackupError(
              'guest',
              `the guest computed for ${Math.floor(used)} ms, over its limit of ${Math.floor(allowed)} ms`,
            ),
          );
        }
      }, WATCH_EVERY_MS);
      watchdog.unref();
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      worker.postMessage({ id, method, args });
    });
  }
}
