// Pyodide runs here, in a worker thread, so that the main thread (host.mjs)
// stays free to read the protocol and can interrupt a busy cell through the
// shared interrupt buffer.
//
// worker -> main: parentPort.postMessage({type, id, ...}) (see host.mjs)
// main -> worker: parentPort messages for requests; SharedArrayBuffers for
// what must reach a worker that is blocked in Atomics.wait (interrupt, input
// and pip replies, output flow control).

import childProcess from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import { createRequire, syncBuiltinESMExports } from "node:module";
import os from "node:os";
import { pathToFileURL } from "node:url";
import vm from "node:vm";
import { parentPort, workerData } from "node:worker_threads";

const cfg = workerData.config;
// The host runs Node with --expose-gc for one call after the warm-up (see
// below); the lockdown takes the function off the global scope.
const collectGarbage = typeof globalThis.gc === "function" ? globalThis.gc : () => {};
const interruptBuf = new Int32Array(workerData.interruptSab);
const want = new Int32Array(workerData.wantSab); // an interrupt Python has not taken yet
const replyCtl = new Int32Array(workerData.replySab, 0, 2);
const replyData = new Uint8Array(workerData.replySab, 8);
const flight = new Int32Array(workerData.flightSab);
// Front ends' comm events, filled by the main thread: [full, length] then JSON.
const commCtl = new Int32Array(workerData.commSab, 0, 2);
const commData = new Uint8Array(workerData.commSab, 8);

const SIGINT = 2;
const SLICE_MS = 50;
const FLIGHT_MAX = 8 * 1024 * 1024;
const MOUNT_SITE = "/opt/anode/site";
const MOUNT_LIB = "/opt/anode/lib/anode_pyodide";
const HOME = "/home/pyodide";

const log = (...args) => console.error("[anode worker]", ...args);
const decoder = new TextDecoder();
const t0 = performance.now();

let currentId = null; // request whose outputs are being produced
let inputSeq = 0;

function post(msg) {
  parentPort.postMessage(msg);
}

// Streams are counted in flight until the main thread has written them out,
// so that a cell printing in a tight loop is slowed down instead of growing
// the main thread's queue without bound.
function postEvent(json) {
  const n = json.length;
  while (Atomics.load(flight, 0) > FLIGHT_MAX) {
    Atomics.wait(flight, 0, Atomics.load(flight, 0), SLICE_MS);
    checkInterrupt();
  }
  Atomics.add(flight, 0, n);
  post({ type: "event", id: currentId, json, size: n });
}

// ---------------------------------------------------------------- boot ----

// Under Node's permission model process.binding() is refused, but Pyodide's
// NODEFS asks it for the fs constants at start-up.
const realBinding = process.binding;
process.binding = (name) => {
  if (name === "constants") return { fs: fs.constants, os: os.constants };
  return realBinding.call(process, name);
};

// Python's wall clock (time.time, time.time_ns, datetime.now) is Emscripten's
// Date.now(): whole milliseconds, so `%time` said "Wall time: 0 ns" and
// t1 - t0 came in steps of 1 ms. performance.now() from the time origin has
// microseconds; should the system clock be set meanwhile, follow it.
const dateNow = Date.now;
let wallOrigin = performance.timeOrigin;
Date.now = () => {
  const now = wallOrigin + performance.now();
  const coarse = dateNow();
  if (now >= coarse - 1 && now <= coarse + 2) return now;
  wallOrigin = coarse - performance.now();
  return coarse;
};

// Emscripten's system() (os.system, posix.system, ctypes) spawns through
// child_process. The permission model refuses, but by throwing in the middle
// of the wasm call, which kills the runtime: answer "command not found"
// instead, and make every other entry point fail cleanly.
for (const name of Object.keys(childProcess)) {
  if (typeof childProcess[name] !== "function") continue;
  childProcess[name] = name === "spawnSync"
    ? () => ({ status: 127, signal: null, pid: 0, output: [], stdout: null, stderr: null })
    : () => {
      throw Object.assign(new Error("no child processes in the sandbox"), { code: "EACCES" });
    };
}
syncBuiltinESMExports();

function safeGlobals() {
  // What Python sees as the `js` module: plain language builtins only. No
  // process, require, fetch, WebSocket, timers that reach the host, or the
  // worker's globalThis.
  const g = Object.create(null);
  for (const name of [
    "Object", "Array", "Promise", "JSON", "Math", "Date", "Error", "TypeError",
    "RangeError", "SyntaxError", "Number", "String", "Boolean", "Symbol", "BigInt",
    "Map", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry",
    "ArrayBuffer", "SharedArrayBuffer", "DataView", "Uint8Array", "Int8Array",
    "Uint8ClampedArray", "Uint16Array", "Int16Array", "Uint32Array", "Int32Array",
    "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
    "TextEncoder", "TextDecoder", "Reflect", "Atomics", "setTimeout", "clearTimeout",
    "setInterval", "clearInterval", "queueMicrotask", "structuredClone", "atob", "btoa",
    "AbortController", "AbortSignal", "URL", "URLSearchParams",
  ]) {
    if (globalThis[name] !== undefined) g[name] = globalThis[name];
  }
  g.console = { log: log, info: log, warn: log, error: log, debug: log };
  if (cfg.network) {
    for (const name of ["fetch", "Request", "Response", "Headers", "FormData", "Blob"]) {
      if (globalThis[name] !== undefined) g[name] = globalThis[name];
    }
  }
  return g;
}

// The snapshot file (written by a cold boot, read by a snapshot boot):
//   u32 magic | u32 code cache length | u32 offset of Pyodide's snapshot | u32 0
//   | V8's code cache for pyodide.asm.js | padding to 8 | Pyodide's snapshot
const SNAP_MAGIC = 0x31534e41;
const SNAP_HEAD = 16;

async function readSnapshot() {
  if (cfg.mode !== "snapshot") return { codeCache: undefined, memory: undefined };
  // The main thread read the file (host.mjs: sendSnapshot). Nothing below
  // copies it: a copy of 40 MB costs 0.1-0.3 s here, most of it page faults.
  const port = workerData.snapshotPort;
  const [msg] = await once(port, "message");
  port.close();
  if (msg.error !== undefined) throw new Error(`cannot read the snapshot: ${msg.error}`);
  const file = Buffer.from(msg.bytes);
  const ok = file.length >= SNAP_HEAD && file.readUInt32LE(0) === SNAP_MAGIC;
  const cacheEnd = ok ? SNAP_HEAD + file.readUInt32LE(4) : 0;
  const offset = ok ? file.readUInt32LE(8) : 0;
  if (!ok || cacheEnd > offset || offset > file.length || offset % 8 !== 0) {
    throw new Error("the snapshot file is not one this host wrote");
  }
  return { codeCache: file.subarray(SNAP_HEAD, cacheEnd), memory: file.subarray(offset) };
}

function writeSnapshot(fd, memory, codeCache) {
  const offset = Math.ceil((SNAP_HEAD + codeCache.length) / 8) * 8;
  const head = Buffer.alloc(offset);
  head.writeUInt32LE(SNAP_MAGIC, 0);
  head.writeUInt32LE(codeCache.length, 4);
  head.writeUInt32LE(offset, 8);
  head.set(codeCache, SNAP_HEAD);
  for (const part of [head, memory]) {
    let off = 0;
    while (off < part.length) off += fs.writeSync(fd, part, off, part.length - off);
  }
  return offset + memory.length;
}

// Pyodide's 1 MB pyodide.asm.js, run as Node would run it (CommonJS), but
// compiled through vm.Script: a snapshot boot then takes V8's code for it from
// the snapshot file instead of compiling it again (~0.4 s of a boot here).
// Without the loader constant (Node < 20.12) pyodide.mjs imports it itself.
let codeCache = "unsupported"; // what became of V8's code cache: see the ready message

function runPyodideScript(cachedData) {
  const importModuleDynamically = vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  if (importModuleDynamically === undefined) return null;
  const file = `${cfg.pyodideDir}/pyodide.asm.js`;
  const source = fs.readFileSync(file, "utf8");
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    { filename: file, cachedData, importModuleDynamically },
  );
  if (cachedData === undefined) codeCache = "none";
  else codeCache = script.cachedDataRejected ? "rejected" : "accepted";
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, cfg.pyodideDir);
  return script;
}

// Pyodide restores a snapshot by copying it over the whole wasm memory
// (`HEAP8.set(snapshot)`), which makes every page resident, the ~10 MB of
// pages that are zero in both included. During that one copy, pages that are
// zero in the snapshot and still zero in the memory are skipped: left alone,
// they stay unbacked (the kernel's zero page) until Python writes them.
const PAGE = 4096;
function restoreSparsely(memory) {
  const nativeSet = Int8Array.prototype.set;
  Int8Array.prototype.set = function (source, offset) {
    // The snapshot's memory part (Pyodide passes a view of it past its header).
    const whole = (offset ?? 0) === 0 && source?.buffer === memory.buffer &&
      source.length >= memory.length / 2 && this.length >= source.length;
    if (!whole || source.byteOffset % 8 !== 0) return nativeSet.call(this, source, offset);
    Int8Array.prototype.set = nativeSet; // this one copy only
    const src = new BigUint64Array(source.buffer, source.byteOffset, source.length >>> 3);
    const dst = new BigUint64Array(this.buffer, this.byteOffset, source.length >>> 3);
    const words = PAGE >>> 3;
    for (let w = 0; w < src.length; w += words) {
      const end = Math.min(w + words, src.length);
      let zero = true;
      for (let i = w; i < end; i++) {
        if (src[i] !== 0n || dst[i] !== 0n) {
          zero = false;
          break;
        }
      }
      if (!zero) dst.set(src.subarray(w, end), w);
    }
    const tail = source.length & 7; // (snapshots are whole pages: none)
    if (tail) nativeSet.call(this, source.subarray(source.length - tail), source.length - tail);
  };
  return () => {
    Int8Array.prototype.set = nativeSet;
  };
}

let snapshotBytes = await readSnapshot();
let pyodideScript = runPyodideScript(snapshotBytes.codeCache);
const { loadPyodide } = await import(pathToFileURL(`${cfg.pyodideDir}/pyodide.mjs`).href);
const makeSnapshot = cfg.mode === "cold" && cfg.snapshotFd !== null;
const unpatch = snapshotBytes.memory ? restoreSparsely(snapshotBytes.memory) : () => {};
const py = await loadPyodide({
  indexURL: `${cfg.pyodideDir}/`,
  jsglobals: safeGlobals(),
  env: { HOME, TERM: "xterm-color", CLICOLOR: "1", PAGER: "cat" },
  stdout: (s) => log("boot stdout:", s),
  stderr: (s) => log("boot stderr:", s),
  _makeSnapshot: makeSnapshot,
  _loadSnapshot: snapshotBytes.memory,
});
unpatch();
snapshotBytes = undefined;
// Pyodide keeps its options for the life of the interpreter: without this the
// snapshot's bytes (40+ MB) would stay alive beside the memory restored from it.
py._api.config._loadSnapshot = undefined;
// Nor would pyodide.asm.wasm's bytes (8.6 MB; V8 keeps its own copy of a
// module's bytes): Pyodide's instantiateWasm closes over the file it read,
// and the Emscripten module keeps that function.
py._module.instantiateWasm = undefined;
const tLoaded = performance.now();

const FS = py.FS;
const NODEFS = FS.filesystems.NODEFS;

// Node's permission model refuses with ERR_ACCESS_DENIED, which Emscripten
// does not know: unmapped, it becomes an undefined errno that can leave
// Python retrying forever. Make it EACCES (and anything else unknown EIO).
const convertNodeCode = NODEFS.convertNodeCode;
NODEFS.convertNodeCode = (e) => {
  if (e.code === "ERR_ACCESS_DENIED") return 2; // EACCES
  return convertNodeCode(e) ?? 29; // EIO
};

function mount(hostPath, path) {
  FS.mkdirTree(path);
  FS.mount(NODEFS, { root: hostPath }, path);
}

mount(cfg.siteDir, MOUNT_SITE);
mount(cfg.shellDir, MOUNT_LIB);
mount(cfg.workdir, cfg.mountPoint);
// Node follows symbolic links out of the directories it was allowed to
// touch, so the sandbox must not be able to create any on the host.
NODEFS.node_ops.symlink = () => {
  throw new FS.ErrnoError(63); // EPERM
};
FS.chdir(cfg.mountPoint);

let kernel;
let snapshotBytesWritten = 0;
if (cfg.mode === "cold") {
  py.runPython(`
import sys
for p in ("${MOUNT_SITE}", "/opt/anode/lib"):
    if p not in sys.path:
        sys.path.append(p)
`);
  kernel = py.pyimport("anode_pyodide.kernel");
  kernel.prepare();
  kernel.destroy();
  if (makeSnapshot) {
    const cache = pyodideScript ? pyodideScript.createCachedData() : new Uint8Array(0);
    snapshotBytesWritten = writeSnapshot(cfg.snapshotFd, py.makeMemorySnapshot(), cache);
    if (cache.length > 0) codeCache = "created";
  }
}
pyodideScript = null; // its source (1 MB) is not needed any more
kernel = py.pyimport("anode_pyodide.kernel");

// ------------------------------------------------------------ bridge ----

function checkInterrupt() {
  // Runs pending Python signal handlers; raises KeyboardInterrupt in Python
  // when the main thread wrote SIGINT into the buffer.
  py.checkInterrupt();
}

function waitReply(kind, seq) {
  for (;;) {
    if (Atomics.wait(replyCtl, 0, 0, SLICE_MS) !== "timed-out" || Atomics.load(replyCtl, 0) !== 0) {
      const len = Atomics.load(replyCtl, 1);
      const msg = JSON.parse(decoder.decode(replyData.slice(0, len)));
      Atomics.store(replyCtl, 0, 0);
      if (msg.kind === kind && msg.seq === seq) return msg;
      continue; // a late answer to an earlier, interrupted request
    }
    if (Atomics.load(interruptBuf, 0) === SIGINT) {
      post({ type: "stdin_cancelled", id: currentId, seq });
      checkInterrupt();
    }
  }
}

const bridge = {
  post: postEvent,
  takeInterrupt() {
    // 1 if the host interrupted and Python has not raised for it yet.
    return Atomics.exchange(want, 0, 0);
  },
  wait(ms) {
    Atomics.wait(interruptBuf, 0, 0, Math.max(0, Math.min(ms, SLICE_MS)));
    checkInterrupt();
  },
  input(prompt, password) {
    const seq = ++inputSeq;
    post({ type: "input_request", id: currentId, seq, prompt, password: !!password });
    return waitReply("input_reply", seq).value;
  },
  takeComms() {
    if (Atomics.load(commCtl, 0) === 0) return undefined; // None (null would be JsNull)
    const text = decoder.decode(commData.slice(0, Atomics.load(commCtl, 1)));
    Atomics.store(commCtl, 0, 0);
    return text;
  },
  commsDone(through) {
    post({ type: "comms_taken", through });
  },
  pip(argsJson) {
    const seq = ++inputSeq;
    post({ type: "pip_request", id: currentId, seq, args: JSON.parse(argsJson) });
    const reply = waitReply("pip_reply", seq);
    if (!reply.ok) return { ok: false, error: String(reply.error ?? "pip failed"), wheels: [] };
    // Only the files the host just downloaded for this request are read.
    const wheels = reply.wheels.map((p) => ({
      filename: p.split("/").pop(),
      data: new Uint8Array(fs.readFileSync(p)),
    }));
    return { ok: true, error: "", wheels };
  },
};

py.setStdout({ write: (buf) => { postEvent(JSON.stringify({ type: "stream", name: "stdout", text: decoder.decode(buf) })); return buf.length; } });
py.setStderr({ write: (buf) => { postEvent(JSON.stringify({ type: "stream", name: "stderr", text: decoder.decode(buf) })); return buf.length; } });
py.setStdin({ error: true });
py.setInterruptBuffer(interruptBuf);

const infoJson = kernel.attach(bridge, JSON.stringify({ cwd: cfg.mountPoint }));

// ----------------------------------------------------------- lockdown ----

// Python keeps `import pyodide_js` working for Pyodide's own modules, but it
// gets a stub without FS, mountNodeFS, loadPackage, _module or _api.
const pyodideStub = {
  version: py.version,
  loadedPackages: {},
  _api: {
    config: { enableRunUntilComplete: py._api.config.enableRunUntilComplete },
    scheduleCallback: py._api.scheduleCallback,
  },
};
py.runPython("import sys; sys.modules.pop('pyodide_js', None)");
py.registerJsModule("pyodide_js", pyodideStub);
// Pyodide still touches a few fields of `process` at run time (exitCode when
// Python exits, version for platform info): it gets a stub with only those.
const processStub = Object.freeze({
  version: process.version,
  versions: Object.freeze({ node: process.versions.node }),
  platform: process.platform,
  argv: Object.freeze(["node", "python"]),
  set exitCode(code) {},
  get exitCode() { return undefined; },
});
for (const name of [
  "process", "require", "fetch", "WebSocket", "XMLHttpRequest", "EventSource",
  "Request", "Response", "Headers", "FormData", "navigator", "_createPyodideModule",
  "importScripts", "module", "exports", "__filename", "__dirname", "gc",
]) {
  try {
    delete globalThis[name];
  } catch {
    globalThis[name] = undefined;
  }
}
globalThis.process = processStub;

const tReady = performance.now();
post({
  type: "ready",
  info: JSON.parse(infoJson),
  mode: cfg.mode,
  load_seconds: (tLoaded - t0) / 1000,
  boot_seconds: (tReady - t0) / 1000,
  snapshot_bytes_written: snapshotBytesWritten,
  code_cache: codeCache,
});

// ----------------------------------------------------------- requests ----

let executing = null;
// The warm-up (kernel.warm_up*) runs the interpreter's common paths once,
// while no request waits: it stops at the next step once one arrives, since
// the request itself then compiles what it needs. Requests run one at a time.
const WARM_UP_STEPS = ["warm_up", "warm_up_execute"];
let waiting = 0; // requests received and not yet answered
let collected = false;
let collectTimer = null;
// A full collection takes ~0.25 s here: it waits for a pause this long, so
// that it does not delay a request sent right after the previous one.
const COLLECT_IDLE_MS = 1000;

function collectOnce() {
  // One full collection, once the boot is over and nothing waits: what the
  // boot left behind (the snapshot's bytes) is returned to the system now,
  // not whenever V8 gets to it.
  if (collected || waiting > 0) return;
  collected = true;
  collectGarbage();
}

function collectWhenIdle() {
  if (collected) return;
  clearTimeout(collectTimer);
  collectTimer = setTimeout(collectOnce, COLLECT_IDLE_MS);
}

let chain = (async () => {
  for (const step of WARM_UP_STEPS) {
    await new Promise((resolve) => setImmediate(resolve)); // let requests in
    if (waiting > 0) return;
    await kernel[step]();
  }
})()
  .catch((e) => log("warm-up failed:", e))
  .then(collectWhenIdle);

async function handle(msg) {
  currentId = msg.id;
  const json = JSON.stringify(msg);
  let content;
  if (msg.type === "execute") {
    Atomics.store(want, 0, 0);
    Atomics.store(interruptBuf, 0, 0);
    kernel.reset_interrupt(); // before "started": the host interrupts only after it
    executing = msg.id;
    post({ type: "started", id: msg.id });
    try {
      // A string, or for a cell with a top-level await, a Python awaitable.
      let out = kernel.execute(json);
      if (typeof out !== "string") {
        const awaitable = out;
        try {
          out = await awaitable;
        } finally {
          awaitable.destroy();
        }
      }
      content = JSON.parse(out);
    } finally {
      executing = null;
      Atomics.store(want, 0, 0);
      Atomics.store(interruptBuf, 0, 0);
    }
  } else if (msg.type === "complete" || msg.type === "inspect" || msg.type === "is_complete") {
    content = JSON.parse(kernel[msg.type](json));
  } else {
    content = { status: "error", ename: "ValueError", evalue: `unknown request ${msg.type}`, traceback: [] };
  }
  post({ type: "reply", id: msg.id, content });
  currentId = null; // what Python posts from now on belongs to no request
}

function fatal(err) {
  const status = err && typeof err.status === "number" ? err.status : null;
  const message = status !== null
    ? `Python exited the interpreter (exit status ${status})`
    : `Pyodide failed: ${err && err.stack ? err.stack : String(err)}`;
  post({ type: "fatal", message, status });
}

parentPort.on("message", (msg) => {
  if (msg.type === "comms") {
    // The mailbox has front ends' comm events. Python is not running (this
    // handler could not run): deliver now, between requests or while an async
    // cell awaits. A busy cell takes them from the flush signal instead.
    try {
      kernel.comms_deliver();
    } catch (e) {
      fatal(e);
    }
    return;
  }
  if (msg.type === "interrupt") {
    // Only reached while Python is idle, awaiting inside an async cell: the
    // buffer still holds SIGINT, so cancel the cell's task instead.
    if (executing !== null && Atomics.exchange(want, 0, 0) === 1) {
      Atomics.store(interruptBuf, 0, 0);
      kernel.interrupt_async();
    }
    return;
  }
  waiting += 1;
  chain = chain
    .then(() => handle(msg))
    .catch(fatal)
    .finally(() => {
      waiting -= 1;
      collectWhenIdle();
    });
});
