// A simulated tablet: an unmodified PouchDB 9 (memory adapter) driven by JSON lines on stdin.
// Each input line is {"id": n, "op": "...", ...}; each output line is {"id": n, "ok": bool, ...}.
// Usage: node tablet.mjs <remote-url> [--user NAME --password PW | --token TOKEN | --session NAME:PW]
import PouchDB from 'pouchdb';
import memoryAdapter from 'pouchdb-adapter-memory';
import readline from 'node:readline';

PouchDB.plugin(memoryAdapter);

const args = process.argv.slice(2);
const remoteUrl = args[0];
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

let cookie = null;

// Node's own fetch (undici), as a tablet's WebView fetch behaves: a connection cut in the middle
// of a response body is an error. (PouchDB's bundled node-fetch 2 waits forever on such a body
// when it had a Content-Length, which no browser does.) PouchDB reads binary bodies with
// response.buffer() in node, so the response gets one.
function tabletFetch(stop) {
  return async (url, init) => {
    const headers = new Headers();
    for (const [name, value] of init.headers || []) headers.set(name, value);
    const token = opt('--token');
    if (token) headers.set('Authorization', `Bearer ${token}`);
    if (cookie) headers.set('Cookie', cookie);
    const signal = init.signal ? AbortSignal.any([init.signal, stop.signal]) : stop.signal;
    const response = await fetch(url, { ...init, headers, signal });
    response.buffer = async () => Buffer.from(await response.arrayBuffer());
    return response;
  };
}

// One remote handle per sync attempt, dropped (its requests aborted) when the attempt ends. After a
// failure PouchDB 9's replicator keeps processing the batches it had in flight and reads on from
// its read-ahead position; if those late requests still reach the server they can write a
// checkpoint past changes that were never replicated. A tablet app must do the same.
function openRemote() {
  const stop = new AbortController();
  const options = { skip_setup: true, fetch: tabletFetch(stop) };
  const user = opt('--user');
  if (user) options.auth = { username: user, password: opt('--password') };
  return { db: new PouchDB(remoteUrl, options), close: () => stop.abort() };
}

async function attempt(run) {
  const remote = openRemote();
  try {
    return summary(await run(remote.db));
  } finally {
    remote.close();
  }
}

async function sessionLogin() {
  const pair = opt('--session');
  if (!pair) return;
  const [name, password] = pair.split(':');
  const base = remoteUrl.replace(/\/[^/]+\/?$/, '');
  const response = await fetch(`${base}/_session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, password }),
  });
  if (!response.ok) throw new Error(`_session login failed: ${response.status} ${await response.text()}`);
  cookie = response.headers.get('set-cookie').split(';')[0];
}

const local = new PouchDB(`tablet-${process.pid}-${Date.now()}`, { adapter: 'memory' });
const live = new Map();
const denied = [];

function summary(result) {
  if (!result) return null;
  const pick = (r) => r && {
    ok: r.ok, status: r.status, docs_read: r.docs_read, docs_written: r.docs_written,
    doc_write_failures: r.doc_write_failures, last_seq: r.last_seq,
    errors: (r.errors || []).map((e) => ({ id: e.id, name: e.name, status: e.status, message: e.message, reason: e.reason })),
  };
  return result.push || result.pull ? { push: pick(result.push), pull: pick(result.pull) } : pick(result);
}

function attach(doc) {
  // Attachments arrive from Python as base64 strings; PouchDB wants Buffers in node.
  if (!doc._attachments) return doc;
  for (const att of Object.values(doc._attachments)) {
    if (typeof att.data === 'string') att.data = Buffer.from(att.data, 'base64');
  }
  return doc;
}

const handlers = {
  async put({ doc }) { return local.put(attach(doc)); },
  async bulk({ docs }) { return local.bulkDocs(docs.map(attach)); },
  async get({ doc_id, options }) { return local.get(doc_id, options || {}); },
  async remove({ doc_id }) { const doc = await local.get(doc_id); return local.remove(doc); },
  async all_docs({ options }) { return local.allDocs(options || {}); },
  async attachment({ doc_id, name }) {
    const blob = await local.getAttachment(doc_id, name);
    return { length: blob.length, base64: blob.toString('base64') };
  },
  async push({ options }) { return attempt((remote) => local.replicate.to(remote, options || {})); },
  async pull({ options }) { return attempt((remote) => local.replicate.from(remote, options || {})); },
  async sync({ options }) { return attempt((remote) => local.sync(remote, options || {})); },
  async live_start({ name, direction }) {
    const opts = { live: true, retry: true };
    const remote = openRemote().db;
    const rep = direction === 'push' ? local.replicate.to(remote, opts)
      : direction === 'pull' ? local.replicate.from(remote, opts) : local.sync(remote, opts);
    const state = { errors: [], changes: 0, paused: 0 };
    rep.on('change', () => { state.changes += 1; });
    rep.on('paused', () => { state.paused += 1; });
    rep.on('denied', (err) => { denied.push({ id: err.id, reason: err.reason }); });
    rep.on('error', (err) => { state.errors.push(String(err)); });
    live.set(name, { rep, state });
    return { started: name };
  },
  async live_state({ name }) { return live.get(name).state; },
  async live_stop({ name }) {
    const entry = live.get(name);
    entry.rep.cancel();
    live.delete(name);
    return entry.state;
  },
  async wait_for({ doc_id, timeout_ms, field, value }) {
    const deadline = Date.now() + (timeout_ms || 10000);
    for (;;) {
      try {
        const doc = await local.get(doc_id);
        if (!field || doc[field] === value) return doc;
      } catch (err) { if (err.status !== 404) throw err; }
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${doc_id}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  },
  async denied() { return denied; },
  async info() { return local.info(); },
};

// A WebView logs unhandled rejections and goes on; PouchDB leaves some (e.g. an info() call made
// while a batch finishes), so this tablet does the same instead of crashing.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`unhandled rejection: ${reason}\n`);
});

await sessionLogin();
process.stdout.write(JSON.stringify({ id: 0, ok: true, ready: true }) + '\n');

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line);
  if (msg.op === 'exit') break;
  const handler = handlers[msg.op];
  try {
    if (!handler) throw new Error(`unknown op ${msg.op}`);
    const result = await handler(msg);
    process.stdout.write(JSON.stringify({ id: msg.id, ok: true, result }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({
      id: msg.id, ok: false,
      error: { name: err.name, status: err.status, message: err.message, reason: err.reason },
    }) + '\n');
  }
}
for (const { rep } of live.values()) rep.cancel();
process.exit(0);
