// Minifies static/sdk/superinsights.src.js into static/sdk/superinsights.js (committed, so the
// Rust build needs no Node) and records both files' SHA-256 in static/sdk/superinsights.build.json,
// which the Rust test `http::sdk::tests::committed_bundle_is_fresh_and_within_budget` compares to
// catch a stale or hand-edited bundle without Node. Fails when the gzip size exceeds the budget.
//   node scripts/build-sdk.mjs           rebuild (scripts/build-sdk runs `npm ci` first if needed)
//   node scripts/build-sdk.mjs --check   rebuild in memory; fail if the committed files differ
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { minify } from 'terser';

const BUDGET_GZIP_BYTES = 3072;
const check = process.argv.includes('--check');
const root = new URL('../', import.meta.url);
const file = (path) => new URL(path, root);
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

const source = readFileSync(file('static/sdk/superinsights.src.js'));
const result = await minify(source.toString('utf8'), {
  ecma: 2020,
  compress: {
    passes: 3,
    toplevel: true,
    pure_getters: true,
    unsafe: true,
    unsafe_arrows: true,
    unsafe_methods: true,
    booleans_as_integers: true,
  },
  mangle: { toplevel: true },
  format: { comments: false },
});
const bundle = result.code + '\n';
const gzipBytes = gzipSync(bundle, { level: 9 }).length;
const terserVersion = JSON.parse(readFileSync(file('node_modules/terser/package.json'))).version;
const build =
  JSON.stringify(
    {
      source_sha256: sha256(source),
      bundle_sha256: sha256(bundle),
      bytes: Buffer.byteLength(bundle),
      gzip_bytes: gzipBytes,
      terser: terserVersion,
    },
    null,
    2,
  ) + '\n';
const outputs = [
  ['static/sdk/superinsights.js', bundle],
  ['static/sdk/superinsights.build.json', build],
];

if (check) {
  const stale = outputs.filter(([path, content]) => {
    try {
      return readFileSync(file(path), 'utf8') !== content;
    } catch {
      return true;
    }
  });
  for (const [path] of stale) console.error(`${path} is not what scripts/build-sdk makes of the source: run scripts/build-sdk`);
  if (stale.length) process.exitCode = 1;
} else {
  for (const [path, content] of outputs) writeFileSync(file(path), content);
}
console.log(`static/sdk/superinsights.js: ${Buffer.byteLength(bundle)} bytes, ${gzipBytes} bytes gzip -9 (budget ${BUDGET_GZIP_BYTES})`);
if (gzipBytes > BUDGET_GZIP_BYTES) {
  console.error('over the size budget');
  process.exitCode = 1;
}
