// Photos flagged as wrong, kept in this browser (IndexedDB), and downloaded as one zip in the layout of the Voila
// app's feedback folder (bearlab.app.keep_flagged): `label/<sha256>.<ext>` and `feedback.jsonl`. So
// `take_feedback(folder, path)` adds them to the dataset, as it adds the app's.

const NOT_A_BEAR = 'not a bear';
const JOURNAL = 'feedback.jsonl';

function db() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open('bearlab-flags', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('flags', { autoIncrement: true });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** Run `fn(store)` in one transaction; its result once the transaction is done. */
async function withFlags(mode, fn) {
  const d = await db(), tx = d.transaction('flags', mode), r = fn(tx.objectStore('flags'));
  await new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); });
  d.close();
  return r && 'result' in r ? r.result : undefined;
}

/** bearlab.dataset.class_folder: a class's folder is named by its label, exactly (spaces and all). */
export const labelFolder = (label) => label;

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

/** The first 16 hex digits of the SHA-256 of `bytes`, as keep_flagged names photos (a weaker hash off https). */
async function hash16(bytes) {
  if (crypto.subtle) return hex(await crypto.subtle.digest('SHA-256', bytes)).slice(0, 16);
  let a = 0x811c9dc5, b = 0x01000193; // crypto.subtle is for https and localhost only: FNV-1a, twice
  for (const x of bytes) { a = Math.imul(a ^ x, 0x01000193) >>> 0; b = Math.imul(b ^ x, 0x811c9dc5) >>> 0; }
  return (a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0'));
}

/** Keep `file` as `label`, with what the model said (`pred`). */
export async function keepFlag(file, ext, label, pred) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const path = `${labelFolder(label)}/${await hash16(bytes)}.${ext}`;
  const line = {
    time: new Date().toISOString().slice(0, 19) + '+00:00', file: path,
    model: pred.inDomain ? pred.label : NOT_A_BEAR, model_prob: Math.round(pred.probs[0][1] * 1e4) / 1e4, person: label,
  };
  await withFlags('readwrite', (s) => s.add({ line, photo: new Blob([bytes]) }));
}

export const countFlags = () => withFlags('readonly', (s) => s.count());
export const forgetFlags = () => withFlags('readwrite', (s) => s.clear());

/** Every flag as one zip: the photos (once each) and the journal. */
export async function flagsZip() {
  const flags = await withFlags('readonly', (s) => s.getAll()), files = new Map();
  for (const { line, photo } of flags) files.set(line.file, new Uint8Array(await photo.arrayBuffer()));
  const journal = flags.map(({ line }) => JSON.stringify(line) + '\n').join('');
  return zip([...files, [JOURNAL, new TextEncoder().encode(journal)]]);
}

const CRC = Uint32Array.from({ length: 256 }, (_, n) => {
  for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
  return n >>> 0;
});
function crc32(b) {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip of `[name, bytes]` pairs, stored uncompressed (photos are compressed already). */
export function zip(entries) {
  const parts = [], central = [], enc = new TextEncoder();
  const now = new Date(), time = (now.getHours() << 11) | (now.getMinutes() << 5) | (now.getSeconds() >> 1);
  const date = ((now.getFullYear() - 1980) << 9) | ((now.getMonth() + 1) << 5) | now.getDate();
  let offset = 0;
  const header = (sig, fields) => {
    const v = new DataView(new ArrayBuffer(fields.reduce((n, [size]) => n + size, 4)));
    v.setUint32(0, sig, true);
    let at = 4;
    for (const [size, value] of fields) {
      if (size === 2) v.setUint16(at, value, true); else v.setUint32(at, value, true);
      at += size;
    }
    return new Uint8Array(v.buffer);
  };
  for (const [name, data] of entries) {
    const n = enc.encode(name), crc = crc32(data);
    // version 2.0, UTF-8 names, stored, time, date, crc, sizes, name length, no extra field
    const common = [[2, 20], [2, 0x0800], [2, 0], [2, time], [2, date], [4, crc], [4, data.length], [4, data.length],
                    [2, n.length], [2, 0]];
    parts.push(header(0x04034b50, common), n, data);
    central.push(header(0x02014b50, [[2, 20], ...common, [2, 0], [2, 0], [2, 0], [4, 0], [4, offset]]), n);
    offset += 30 + n.length + data.length;
  }
  const size = central.reduce((s, p) => s + p.length, 0);
  const end = header(0x06054b50, [[2, 0], [2, 0], [2, entries.length], [2, entries.length], [4, size], [4, offset], [2, 0]]);
  return new Blob([...parts, ...central, end], { type: 'application/zip' });
}
