// The backup service for Node servers: the policy component in a worker thread (worker.js),
// called one operation at a time, each a Promise of the export's answer (as jco gives it:
// records with camelCase fields, u64 as BigInt) or a rejection with a BackupError.
//
// The guest's own computing time is limited as the Rust host limits it (5 s per operation,
// plus 200 us per entry of the largest listing; time inside host capabilities does not
// count): the worker publishes, in shared memory, when the call started and how long it has
// spent in host imports, and a watchdog here terminates the worker when the guest has run
// over its limit. A fresh worker takes the next call; the temporaries the stopped operation
// had created are removed here.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { removeTemporaryFiles } from './backup-dir.js';
import { GUEST_MS_PER_LISTED_ENTRY } from './budget.js';
import { DEFAULT_GUEST_TIME_MS, DEFAULT_MEMORY_BYTES } from './limits.js';
import { BackupError } from './errors.js';
import { exceededMilliseconds, guestMilliseconds, listedEntries, newClockBuffer } from './guest-clock.js';

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
 * operation; `memoryBytes` the most linear memory the guest may have. Resolves once the component is loaded, or rejects with a BackupError.
 */
export async function createBackupService({
  database,
  backups,
  component = defaultComponentPath(),
  busyTimeoutMs,
  guestTimeMs = DEFAULT_GUEST_TIME_MS,
  memoryBytes = DEFAULT_MEMORY_BYTES,
} = {}) {
  if (typeof database !== 'string' || database === '') throw new TypeError('createBackupService needs `database`, a path');
  if (typeof backups !== 'string' || backups === '') throw new TypeError('createBackupService needs `backups`, a path');
  const options = {
    database: path.resolve(database),
    backups: path.resolve(backups),
    component: path.resolve(component),
    busyTimeoutMs,
    memoryBytes,
  };
  const first = await startWorker(options);
  // The component as the first worker transpiled and compiled it, for the workers after.
  options.prepared = first.prepared;
  delete first.prepared;
  return new BackupService(options, first, guestTimeMs);
}

/** Starts a worker and waits until it has loaded the component. */
function startWorker(options) {
  const clock = newClockBuffer();
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { ...options, clock },
  });
  const temporaries = new Set();
  const running = { worker, clock: new BigInt64Array(clock), temporaries, stopped: false };
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
  /** The running worker, or a promise of the next one (after one was stopped). */
  #running;
  #queue = Promise.resolve();
  #closed = false;
  #nextId = 0;

  constructor(options, running, guestTimeMs) {
    this.#options = options;
    this.#guestTimeMs = guestTimeMs;
    this.#running = running;
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

  /** Waits for the calls already made, then stops the worker. Later calls reject. */
  async close() {
    if (this.#closed) return this.#queue;
    this.#closed = true;
    await this.#queue;
    const running = await Promise.resolve(this.#running).catch(() => undefined);
    await running?.worker.terminate();
  }

  #call(method, args) {
    const name = args[0];
    const optional = method === 'create' || method === 'drill';
    if (method !== 'list' && method !== 'prune' && typeof name !== 'string' && !(optional && name === undefined)) {
      return Promise.reject(new TypeError(`${method} takes a backup name (a string)${optional ? ' or nothing' : ''}`));
    }
    if (this.#closed) return Promise.reject(new BackupError('host', 'the backup service is closed'));
    const answer = this.#queue.then(() => this.#run(method, args));
    // The queue goes on whatever this call's answer.
    this.#queue = answer.then(
      () => undefined,
      () => undefined,
    );
    return answer;
  }

  async #run(method, args) {
    let running;
    try {
      running = await this.#running;
    } catch {
      running = undefined;
    }
    if (!running || running.stopped) {
      this.#running = startWorker(this.#options);
      running = await this.#running;
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
