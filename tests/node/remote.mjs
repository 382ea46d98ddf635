// Remote-database operations with an unmodified PouchDB 9 client, driven by JSON lines on stdin
// (used for admin access through the gateway). Each input line is {"id": n, "op": "...", ...}.
// Usage: node remote.mjs <server-url> <username> <password>
import PouchDB from 'pouchdb';
import memoryAdapter from 'pouchdb-adapter-memory';
import readline from 'node:readline';

PouchDB.plugin(memoryAdapter);
const [serverUrl, username, password] = process.argv.slice(2);
const dbs = new Map();

function remote(name) {
  if (!dbs.has(name)) {
    dbs.set(name, new PouchDB(`${serverUrl}/${encodeURIComponent(name)}`, {
      auth: { username, password },
      fetch: async (url, init) => {
        const headers = new Headers();
        for (const [k, v] of init.headers || []) headers.set(k, v);
        const response = await fetch(url, { ...init, headers });
        response.buffer = async () => Buffer.from(await response.arrayBuffer());
        return response;
      },
    }));
  }
  return dbs.get(name);
}

const handlers = {
  async info({ db }) { return remote(db).info(); },
  async destroy({ db }) { const r = await remote(db).destroy(); dbs.delete(db); return r; },
  async put({ db, doc }) { return remote(db).put(doc); },
  async get({ db, doc_id, options }) { return remote(db).get(doc_id, options || {}); },
  async all_docs({ db, options }) { return remote(db).allDocs(options || {}); },
  async query({ db, view, options }) { return remote(db).query(view, options || {}); },
  async put_attachment({ db, doc_id, name, rev, base64, content_type }) {
    return remote(db).putAttachment(doc_id, name, rev, Buffer.from(base64, 'base64'), content_type);
  },
  async get_attachment({ db, doc_id, name }) {
    const data = await remote(db).getAttachment(doc_id, name);
    return { base64: Buffer.from(data).toString('base64') };
  },
  async replicate({ source, target, options }) {
    const r = await PouchDB.replicate(remote(source), remote(target), options || {});
    return { ok: r.ok, docs_read: r.docs_read, docs_written: r.docs_written, doc_write_failures: r.doc_write_failures };
  },
};

process.on('unhandledRejection', (reason) => process.stderr.write(`unhandled rejection: ${reason}\n`));
process.stdout.write(JSON.stringify({ id: 0, ok: true, ready: true }) + '\n');
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line);
  if (msg.op === 'exit') break;
  try {
    const handler = handlers[msg.op];
    if (!handler) throw new Error(`unknown op ${msg.op}`);
    process.stdout.write(JSON.stringify({ id: msg.id, ok: true, result: await handler(msg) }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({
      id: msg.id, ok: false, error: { name: err.name, status: err.status, message: err.message, reason: err.reason },
    }) + '\n');
  }
}
process.exit(0);
