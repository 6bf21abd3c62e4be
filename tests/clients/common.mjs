// Shared code of the SDK drivers in this directory.
//
// The SDKs live in the client cache installed by install.sh (ZENN_CLIENTS_DIR,
// default /var/cache/zenn-gateway/clients), not in the checkout, so they are loaded
// with a require() rooted there.  Every driver reads its target from the environment:
//   ZG_CLIENT_BASE  base URL given to the SDK (e.g. http://127.0.0.1:18080/api/v1)
//   ZG_CLIENT_KEY   the API key
// takes the operations to run as arguments, and prints one JSON object on stdout:
// {"sdk": name, "version": v, "<operation>": {...result...}, ...}.  Any failure
// prints the error (status, headers, body) on stderr and exits 1.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const dir = process.env.ZENN_CLIENTS_DIR || '/var/cache/zenn-gateway/clients';
const req = createRequire(dir + '/lib/package.json');

export function load(name) {
  return req(name);
}

export function packageVersion(name) {
  const file = `${dir}/lib/node_modules/${name}/package.json`;
  return JSON.parse(readFileSync(file, 'utf8')).version;
}

export function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

// Run each named operation from `ops` in the order given on the command line.
export async function run(sdk, ops) {
  const names = process.argv.slice(2);
  if (names.length === 0 || names.some((n) => !(n in ops))) {
    console.error(`usage: ${process.argv[1]} OPERATION... (one of: ${Object.keys(ops).join(' ')})`);
    process.exit(2);
  }
  const out = { sdk, version: packageVersion(sdk) };
  for (const n of names) {
    try {
      out[n] = await ops[n]();
    } catch (e) {
      console.error(`${n} failed: ${e?.stack || e}`);
      if (e?.status) console.error(`status: ${e.status}`);
      if (e?.headers) console.error(`headers: ${JSON.stringify(Object.fromEntries(e.headers?.entries?.() ?? []))}`);
      if (e?.error) console.error(`body: ${JSON.stringify(e.error)}`);
      console.log(JSON.stringify(out));
      process.exit(1);
    }
  }
  console.log(JSON.stringify(out));
}
