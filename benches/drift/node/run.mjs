// Peer runner: end-to-end drift detection with an npm differ.
// usage: node run.mjs microdiff|jsondiffpatch DIR
// Prints one line of key=value pairs like the Rust harness.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [tool, dir] = process.argv.slice(2);
const require = createRequire(path.join(process.cwd(), 'package.json'));
const now = () => Number(process.hrtime.bigint()) / 1e9;

const t0 = now();
const dText = fs.readFileSync(path.join(dir, 'desired.json'), 'utf8');
const lText = fs.readFileSync(path.join(dir, 'live.json'), 'utf8');
const read = now() - t0;
const t1 = now();
const desired = JSON.parse(dText);
const live = JSON.parse(lText);
const parse = now() - t1;
const t2 = now();
let result;
let count;
if (tool === 'microdiff') {
  const mod = require('microdiff');
  const diff = mod.default || mod;
  result = diff(live, desired);
  count = result.length;
} else if (tool === 'jsondiffpatch') {
  const mod = await import(require.resolve('jsondiffpatch'));
  // Keyed matching, as rollgate does: elements are identified by `name`.
  const differ = mod.create({ objectHash: (o, i) => (o && o.name !== undefined ? o.name : '$$index:' + i) });
  result = differ.diff(live, desired) || {};
  // Count leaf deltas (arrays of length 1..3 are jsondiffpatch's change records).
  count = 0;
  const walk = (d) => {
    if (Array.isArray(d)) { count += 1; return; }
    if (d && typeof d === 'object') for (const [k, v] of Object.entries(d)) { if (k !== '_t') walk(v); }
  };
  walk(result);
} else {
  throw new Error('unknown tool ' + tool);
}
const diffTime = now() - t2;
const t3 = now();
const out = JSON.stringify(result);
const render = now() - t3;
const total = now() - t0;
const mb = (Buffer.byteLength(dText) + Buffer.byteLength(lText)) / 1e6;
console.log(`tool=${tool} total_s=${total.toFixed(3)} read_s=${read.toFixed(3)} parse_s=${parse.toFixed(3)} parse_mb_s=${(mb / parse).toFixed(0)} diff_s=${diffTime.toFixed(3)} render_s=${render.toFixed(3)} differences=${count} report_bytes=${out.length}`);
