// The policy component, loaded once: its bytes read from the file `litegraph-backup component`
// writes, transpiled in memory with jco (instantiation mode: the generated JS imports
// nothing, we hand it the core modules and every import object), the core modules compiled
// once. Each operation then instantiates it afresh, as the Rust host gives each call a
// fresh Store.

import crypto from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { transpileBytes } from '@bytecodealliance/jco-transpile';
import * as cli from '@bytecodealliance/preview2-shim/cli';
import * as io from '@bytecodealliance/preview2-shim/io';

import { DEFAULT_MEMORY_BYTES } from './limits.js';

/** The name jco gives the generated files (`policy.js`, `policy.core.wasm`, ...). */
const NAME = 'policy';

const WASM_PAGE = 65536;

/**
 * Reads and transpiles the component file: `{ path, length, sha256, source, modules }`, the
 * generated JS (a string) and the compiled core modules (a plain object of
 * WebAssembly.Module by name). All of it can be posted to another worker, which then loads
 * it with `loadPrepared` without transpiling or compiling again.
 */
export async function prepareComponent(path, { memoryBytes = DEFAULT_MEMORY_BYTES } = {}) {
  let bytes;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new Error(
      `cannot read the policy component ${path}: ${error.message} ` +
        '(write it with `litegraph-backup component --output FILE`)',
      { cause: error },
    );
  }
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex').toUpperCase();
  const notComponent = (why, cause) =>
    new Error(
      `the policy component ${path} is not a WebAssembly component (${why}); ` +
        'write it again with `litegraph-backup component --output FILE`',
      { cause },
    );
  // A component begins with "\0asm" and layer 1 (a core module has layer 0).
  if (bytes.length < 8 || !bytes.subarray(0, 4).equals(Buffer.from([0, 0x61, 0x73, 0x6d]))) {
    throw notComponent('no WebAssembly header');
  }
  if (bytes[6] !== 1 || bytes[7] !== 0) throw notComponent('a core WebAssembly module, not a component');
  let files;
  try {
    ({ files } = await transpileBytes(bytes, {
      name: NAME,
      instantiation: 'sync',
      // An export's `err` is thrown as the variant itself, not wrapped in an Error.
      noComponentErrorWrapping: true,
      emitTypescriptDeclarations: false,
    }));
  } catch (error) {
    throw notComponent(String(error?.message ?? error), error);
  }
  const modules = {};
  for (const [name, contents] of Object.entries(files)) {
    if (name.endsWith('.wasm')) {
      modules[name] = await WebAssembly.compile(withMemoryLimit(contents, Math.floor(memoryBytes / WASM_PAGE)));
    }
  }
  const source = files[`${NAME}.js`];
  if (!source) throw new Error(`jco generated no ${NAME}.js for ${path}`);
  return { path, length: bytes.length, sha256, source: Buffer.from(source).toString('utf8'), modules };
}

/**
 * Loads the component file: `{ path, length, sha256, instantiate(imports) }`, where
 * `instantiate` takes `{ store, snapshot, remote }` (the litegraph:backup import objects)
 * and returns the `backup` export, whose functions are synchronous and throw the WIT
 * `error` variant (`{ tag, val? }`) when they return `err`.
 */
export async function loadComponent(path, options) {
  return loadPrepared(await prepareComponent(path, options));
}

/** `loadComponent` from what `prepareComponent` made (here or in another thread). */
export async function loadPrepared(prepared) {
  const { path, length, sha256, source, modules } = prepared;
  // The generated module has no imports of its own, so it can be loaded from a data: URL:
  // nothing is written to disk, and nothing it could resolve is reachable from there.
  // The sourceURL names it in stack traces (instead of a 600 KB URL).
  const code = `${source}\n//# sourceURL=litegraph-backup-policy.js\n`;
  const generated = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
  const getCoreModule = (name) => {
    const module = modules[name];
    if (!(module instanceof WebAssembly.Module)) {
      throw new Error(`jco asked for a core module it did not generate: ${name}`);
    }
    return module;
  };
  return {
    path,
    length,
    sha256,
    instantiate({ store, snapshot, remote }) {
      return withoutJspiProbeCost(() =>
        generated.instantiate(getCoreModule, {
          'litegraph:backup/store': store,
          'litegraph:backup/snapshot': snapshot,
          'litegraph:backup/remote': remote,
          ...wasiImports(),
        }).backup,
      );
    },
  };
}

/**
 * The core module with a maximum on each memory it defines (at most `maxPages` pages of 64
 * KiB): growing past it fails inside the guest (its allocator then aborts: a trap), as a
 * memory limit of the Rust host's StoreLimits does. Only the memory section changes.
 */
export function withMemoryLimit(module, maxPages) {
  const bytes = Buffer.from(module.buffer, module.byteOffset, module.byteLength);
  const MEMORY_SECTION = 5;
  const out = [bytes.subarray(0, 8)];
  let at = 8;
  const readU32 = () => {
    let value = 0;
    let shift = 0;
    let byte;
    do {
      byte = bytes[at++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return value;
  };
  while (at < bytes.length) {
    const sectionStart = at;
    const id = bytes[at++];
    const size = readU32();
    const bodyStart = at;
    const next = bodyStart + size;
    if (id !== MEMORY_SECTION) {
      out.push(bytes.subarray(sectionStart, next));
      at = next;
      continue;
    }
    const count = readU32();
    const body = [...uleb(count)];
    for (let i = 0; i < count; i++) {
      const flags = bytes[at++];
      if (flags & 0x04) throw new Error('the policy component has a 64-bit memory: not supported');
      const min = readU32();
      const max = flags & 0x01 ? readU32() : Infinity;
      const limit = Math.max(min, Math.min(max, maxPages));
      body.push(flags | 0x01, ...uleb(min), ...uleb(limit));
    }
    if (at !== next) throw new Error('the policy component has a memory section this host cannot read');
    out.push(Buffer.from([id, ...uleb(body.length), ...body]));
    at = next;
  }
  return Buffer.concat(out);
}

function uleb(value) {
  const encoded = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    encoded.push(byte);
  } while (value > 0);
  return encoded;
}

const NO_JSPI = new TypeError('WebAssembly.promising is not available (no JSPI in this Node)');

/**
 * Runs `instantiate` with a `WebAssembly.promising` that throws a ready-made error when the
 * runtime has none (Node 20). The generated code probes for JSPI a dozen times per instance
 * and falls back when the call throws; V8's own "is not a function" TypeError re-parses the
 * 600 KB calling function to word its message, which cost ~45 ms per instance.
 */
function withoutJspiProbeCost(instantiate) {
  if (typeof WebAssembly.promising === 'function') return instantiate();
  WebAssembly.promising = () => {
    throw NO_JSPI;
  };
  try {
    return instantiate();
  } finally {
    delete WebAssembly.promising;
  }
}

/**
 * The WASI interfaces the guest's Rust standard library imports (and the policy never uses):
 * preview2-shim's streams and terminals, but no environment, no arguments, no working
 * directory, no stdin; `exit` traps instead of ending the thread. The guest imports no
 * filesystem, clocks, random or sockets.
 */
function wasiImports() {
  return {
    'wasi:cli/environment': {
      getEnvironment: () => [],
      getArguments: () => [],
      initialCwd: () => undefined,
    },
    'wasi:cli/exit': {
      exit() {
        throw new Error('the policy component called exit');
      },
    },
    'wasi:cli/stdin': {
      getStdin() {
        throw new Error('the policy component has no stdin');
      },
    },
    'wasi:cli/stdout': cli.stdout,
    'wasi:cli/stderr': cli.stderr,
    'wasi:cli/terminal-input': cli.terminalInput,
    'wasi:cli/terminal-output': cli.terminalOutput,
    'wasi:cli/terminal-stdin': cli.terminalStdin,
    'wasi:cli/terminal-stdout': cli.terminalStdout,
    'wasi:cli/terminal-stderr': cli.terminalStderr,
    'wasi:io/error': io.error,
    'wasi:io/poll': io.poll,
    'wasi:io/streams': io.streams,
  };
}
