// Main thread of the Anode Pyodide host.
//
// Protocol: one JSON object per line. stdin carries requests from the Python
// side (anode_ext/runtime/host.py); stdout carries events and replies and
// nothing else; logs go to stderr.
//
//   in:  execute {id, code, silent, store_history, user_expressions, allow_stdin}
//        complete {id, code, cursor_pos}   inspect {id, code, cursor_pos, detail_level}
//        is_complete {id, code}   interrupt {}   shutdown {}
//        input_reply {seq, value}   pip_reply {seq, ok, wheels, error}
//        comms {messages: [{seq, kind, comm_id, data, ...}]} (front ends' comm events)
//   out: ready {info, mode, boot_seconds, code_cache, ...}   event {id, event: {type: stream |
//        output | display_update | clear_output | execute_input}}
//        input_request {id, seq, prompt, password}   pip_request {id, seq, args}
//        stdin_cancelled {id, seq}   reply {id, content}   fatal {message, status}
//        comms_taken {through}  (Python handled the comm events up to that seq)
//   An event with id null was made outside any request (by a comm callback).
//
// The host process ends when stdin closes, so it never outlives its parent.

import fs from "node:fs";
import readline from "node:readline";
import { MessageChannel, Worker } from "node:worker_threads";

const cfg = JSON.parse(process.argv[2]);
const log = (...args) => console.error("[anode host]", ...args);
const t0 = performance.now();

const SIGINT = 2;
const FLUSH_SIGNAL = 40; // Python-side handler flushes buffered stdout/stderr
const FLUSH_MS = 50;
const COALESCE_BYTES = 64 * 1024;
const REPLY_BYTES = 4 * 1024 * 1024;

const interruptSab = new SharedArrayBuffer(4);
const interruptBuf = new Int32Array(interruptSab);
// Set with every SIGINT, cleared by Python when it takes the interrupt.
// Pyodide reads and clears interruptBuf in two steps, so a SIGINT written
// between them (while Python takes a flush signal) is lost; the flush handler
// sees this flag still set and raises the KeyboardInterrupt itself.
const wantSab = new SharedArrayBuffer(4);
const want = new Int32Array(wantSab);
const replySab = new SharedArrayBuffer(8 + REPLY_BYTES);
const replyCtl = new Int32Array(replySab, 0, 2);
const replyData = new Uint8Array(replySab, 8);
const flightSab = new SharedArrayBuffer(4);
const flight = new Int32Array(flightSab);
// The comm mailbox: front ends' comm events for Python, a batch at a time.
const COMM_BYTES = 4 * 1024 * 1024;
const commSab = new SharedArrayBuffer(8 + COMM_BYTES);
const commCtl = new Int32Array(commSab, 0, 2);
const commData = new Uint8Array(commSab, 8);
let commQueue = []; // comm events not yet in the mailbox
const encoder = new TextEncoder();

let worker = null;
let running = null; // id of the execute request the worker is running
let queuedExecutes = 0; // execute requests sent to the worker, not started yet
let interruptPending = false; // an interrupt for the next execute to start
let quietUntil = 0; // no flush signal before this time (an interrupt is in flight)
let stdinWaiting = null; // seq of the input/pip request the worker waits for
let exiting = false;
let pendingStream = null; // {id, name, text, size}: coalesced stream output
// A cell's execute_result is held until the next message of the worker: it is
// almost always the reply. What is pending (a stream or the result) goes out
// in one write with the reply, so that Python reads them together: the cell's
// last output and its end then make one batch in the log, not two.
let heldResult = null; // {line, size}
let coldFallback = null; // why the snapshot could not be used

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function delivered(size) {
  Atomics.sub(flight, 0, size);
  Atomics.notify(flight, 0);
}

function takePending() {
  let out = "";
  if (pendingStream !== null) {
    const { id, name, text, size } = pendingStream;
    pendingStream = null;
    out += JSON.stringify({ type: "event", id, event: { type: "stream", name, text } }) + "\n";
    delivered(size);
  }
  if (heldResult !== null) {
    out += heldResult.line;
    delivered(heldResult.size);
    heldResult = null;
  }
  return out;
}

function flushPending(after = "") {
  const out = takePending() + after;
  if (out) process.stdout.write(out);
}

function onEvent(msg) {
  const ev = JSON.parse(msg.json);
  if (ev.type === "stream") {
    const joins = pendingStream && pendingStream.id === msg.id && pendingStream.name === ev.name;
    if (!joins) flushPending();
    if (pendingStream === null) {
      pendingStream = { id: msg.id, name: ev.name, text: ev.text, size: msg.size };
    } else {
      pendingStream.text += ev.text;
      pendingStream.size += msg.size;
    }
    if (pendingStream.text.length >= COALESCE_BYTES) flushPending();
    return;
  }
  flushPending();
  const line = JSON.stringify({ type: "event", id: msg.id, event: ev }) + "\n";
  if (ev.type === "output" && ev.output?.output_type === "execute_result") {
    heldResult = { line, size: msg.size };
    return;
  }
  process.stdout.write(line);
  delivered(msg.size);
}

function sendReply(obj) {
  const bytes = encoder.encode(JSON.stringify(obj));
  if (bytes.length > REPLY_BYTES) {
    return sendReply({ ...obj, value: "", ok: false, wheels: [], error: "reply too large" });
  }
  replyData.set(bytes);
  Atomics.store(replyCtl, 1, bytes.length);
  Atomics.store(replyCtl, 0, 1);
  Atomics.notify(replyCtl, 0);
}

function die(code, message) {
  if (exiting) return;
  exiting = true;
  flushPending();
  if (message) write({ type: "fatal", message, status: code });
  process.exitCode = code;
  // Leave the event loop a moment to drain stdout, then go.
  setTimeout(() => process.exit(code), 20).unref();
  if (worker) worker.terminate().catch(() => {});
}

function sendSnapshot(port) {
  // Read here while the new thread starts up (~0.5 s here, nothing else to
  // do meanwhile), and handed over without a copy.
  try {
    const file = fs.readFileSync(cfg.snapshotPath);
    const whole = file.byteOffset === 0 && file.buffer.byteLength === file.length;
    const bytes = whole ? file.buffer : file.buffer.slice(file.byteOffset, file.byteOffset + file.length);
    port.postMessage({ bytes }, [bytes]);
  } catch (err) {
    port.postMessage({ error: String(err && err.message ? err.message : err) });
  }
}

function startWorker(mode) {
  const snapshot = mode === "snapshot" ? new MessageChannel() : null;
  const snapshotPort = snapshot ? snapshot.port2 : null;
  const w = new Worker(new URL("./worker.mjs", import.meta.url), {
    workerData: {
      config: { ...cfg, mode }, interruptSab, wantSab, replySab, flightSab, commSab, snapshotPort,
    },
    transferList: snapshotPort ? [snapshotPort] : [],
    // A young generation of 16 MB: Python's objects live in the wasm memory and
    // the worker's own JavaScript garbage is small. The larger young space the
    // node flags give (sized for a boot) stayed resident, ~18 MB more, and made
    // no boot faster here; 8 MB or less slowed the boot.
    resourceLimits: { maxOldGenerationSizeMb: cfg.jsHeapMb, maxYoungGenerationSizeMb: 16 },
    stdout: true,
    stderr: true,
    env: {},
  });
  // Whatever the worker prints (console.*) must not reach the protocol.
  w.stdout.pipe(process.stderr);
  w.stderr.pipe(process.stderr);
  w.on("message", (msg) => onWorkerMessage(w, msg));
  w.on("error", (err) => {
    if (w !== worker) return;
    if (mode === "snapshot" && !ready) {
      coldFallback = `snapshot load failed: ${err && err.message ? err.message : err}`;
      log(coldFallback, "- booting cold");
      worker = startWorker("cold");
      return;
    }
    // os._exit(n) and a fatal sys.exit unwind as an Emscripten ExitStatus.
    const exit = /Program terminated with exit\((\d+)\)/.exec(String(err && err.message));
    if (exit) return die(Number(exit[1]), `Python exited the interpreter (exit status ${exit[1]})`);
    const oom = err && err.code === "ERR_WORKER_OUT_OF_MEMORY";
    die(oom ? 137 : 70, oom ? "JavaScript heap limit reached in the Pyodide worker" : `worker error: ${err && err.stack ? err.stack : err}`);
  });
  w.on("exit", (code) => {
    if (w !== worker || exiting) return;
    die(code || 70, `Pyodide worker exited (code ${code})`);
  });
  if (snapshot) sendSnapshot(snapshot.port1);
  return w;
}

let ready = false;

function onWorkerMessage(w, msg) {
  if (w !== worker) return;
  // A held result goes out before anything but its reply (which takes it along).
  if (msg.type !== "event" && msg.type !== "reply") flushPending();
  switch (msg.type) {
    case "ready":
      ready = true;
      fillMailbox();
      write({
        type: "ready",
        info: msg.info,
        mode: msg.mode,
        snapshot_fallback: coldFallback,
        load_seconds: msg.load_seconds,
        boot_seconds: (performance.now() - t0) / 1000,
        snapshot_bytes_written: msg.snapshot_bytes_written,
        code_cache: msg.code_cache,
      });
      break;
    case "event":
      onEvent(msg);
      break;
    case "started":
      running = msg.id;
      queuedExecutes = Math.max(0, queuedExecutes - 1);
      if (interruptPending) {
        // Interrupted while it waited its turn (behind the warm-up or another request).
        interruptPending = false;
        raiseInterrupt();
      }
      break;
    case "reply":
      if (running === msg.id) running = null;
      flushPending(JSON.stringify(msg) + "\n");
      break;
    case "input_request":
    case "pip_request":
      stdinWaiting = msg.seq;
      write(msg);
      break;
    case "stdin_cancelled":
      if (stdinWaiting === msg.seq) stdinWaiting = null;
      write(msg);
      break;
    case "comms_taken":
      write(msg);
      fillMailbox();
      break;
    case "fatal":
      die(msg.status ?? 70, msg.message);
      break;
    default:
      log("unknown worker message", msg.type);
  }
}

function raiseInterrupt() {
  // The flush signal shares the buffer: hold it off so Python cannot read a
  // flush and clear the buffer just as SIGINT is written into it.
  quietUntil = performance.now() + 1000;
  Atomics.store(want, 0, 1);
  Atomics.store(interruptBuf, 0, SIGINT);
  Atomics.notify(interruptBuf, 0);
  worker.postMessage({ type: "interrupt" });
}

function fillMailbox() {
  // As many queued comm events as fit, once Python emptied the mailbox; then
  // a word to the worker (idle) and the flush signal (a busy cell) to take them.
  if (!ready || commQueue.length === 0 || Atomics.load(commCtl, 0) !== 0) return;
  let bytes = null;
  let n = commQueue.length;
  for (; n > 0; n = Math.floor(n / 2)) {
    bytes = encoder.encode(JSON.stringify(commQueue.slice(0, n)));
    if (bytes.length <= COMM_BYTES) break;
  }
  if (n === 0) {
    log("a comm event is larger than the mailbox; dropped");
    commQueue.shift();
    return fillMailbox();
  }
  commQueue = commQueue.slice(n);
  commData.set(bytes);
  Atomics.store(commCtl, 1, bytes.length);
  Atomics.store(commCtl, 0, 1);
  worker.postMessage({ type: "comms" });
  if (running !== null && performance.now() > quietUntil) {
    Atomics.compareExchange(interruptBuf, 0, 0, FLUSH_SIGNAL);
  }
}

function onRequest(line) {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    log("bad request line:", e.message);
    return;
  }
  switch (msg.type) {
    case "interrupt":
      if (running !== null) raiseInterrupt();
      else if (queuedExecutes > 0) interruptPending = true;
      break;
    case "input_reply":
    case "pip_reply":
      if (stdinWaiting === msg.seq) {
        stdinWaiting = null;
        sendReply({ ...msg, kind: msg.type });
      }
      break;
    case "comms":
      commQueue.push(...msg.messages);
      fillMailbox();
      break;
    case "shutdown":
      die(0, null);
      break;
    default:
      if (msg.type === "execute") queuedExecutes += 1;
      worker.postMessage(msg);
  }
}

// While a cell runs, ask Python every FLUSH_MS to flush what it buffered, and
// pass on what the worker sent, so output streams while the cell is busy.
// A SIGINT Python has not taken yet is written again instead: CPython's
// check stores 0 after every read, even a read of 0, so a SIGINT written
// between the two is gone without a trace (about 1 interrupt in 10 of a busy
// loop waited for the flush signal, a second later).
setInterval(() => {
  if (running !== null) {
    if (Atomics.load(want, 0) === 1) Atomics.compareExchange(interruptBuf, 0, 0, SIGINT);
    else if (performance.now() > quietUntil) Atomics.compareExchange(interruptBuf, 0, 0, FLUSH_SIGNAL);
  }
  flushPending();
}, FLUSH_MS);

worker = startWorker(cfg.mode);
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", onRequest);
rl.on("close", () => die(0, null));
process.stdout.on("error", () => die(0, null));
log(`starting (${cfg.mode}) in ${((performance.now() - t0) / 1000).toFixed(3)}s`);
