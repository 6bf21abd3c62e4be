#!/bin/sh
# vendor-www.sh WWWDIR: copy the pages' third-party browser libraries, pinned in WWWDIR/vendor.lock
# (name, version, the registry's sha512 integrity, files), from the npm registry into
# WWWDIR/vendor/NAME/ with their licences. Each tarball is checked against its integrity before
# anything is taken from it, and cached in $ZENN_VENDOR_CACHE (default
# /var/cache/zenn-gateway/npm, else ~/.cache/zenn-gateway/npm), so a rebuild needs no network.
# A library already at its pinned version is left alone. Registry: $ZENN_NPM_REGISTRY, else npm's
# configured registry, else https://registry.npmjs.org/.
set -eu
WWW=${1:?usage: vendor-www.sh WWWDIR}
LOCK=$WWW/vendor.lock
CACHE=${ZENN_VENDOR_CACHE:-/var/cache/zenn-gateway/npm}
mkdir -p "$CACHE" 2>/dev/null || CACHE=${HOME:-/tmp}/.cache/zenn-gateway/npm
mkdir -p "$CACHE"
REG=${ZENN_NPM_REGISTRY:-$(npm config get registry 2>/dev/null || true)}
case $REG in http*) ;; *) REG=https://registry.npmjs.org/ ;; esac
REG=${REG%/}

grep -v '^[[:space:]]*\(#\|$\)' "$LOCK" | while read -r name version integrity files; do
  dest=$WWW/vendor/$name
  [ "$(cat "$dest/.version" 2>/dev/null || true)" = "$version" ] && continue
  tgz=$CACHE/$name-$version.tgz
  if [ ! -f "$tgz" ]; then
    echo "vendor-www: fetching $name@$version"
    curl -fsSL --retry 3 -o "$tgz.part" "$REG/$name/-/$name-$version.tgz"
    mv "$tgz.part" "$tgz"
  fi
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 | tr -d '\n')"
  if [ "$got" != "$integrity" ]; then
    rm -f "$tgz"
    echo "vendor-www: $name@$version does not match its pinned integrity" >&2
    exit 1
  fi
  tmp=$(mktemp -d)
  for f in $files; do
    tar -xzf "$tgz" -C "$tmp" "package/$f"
  done
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in $files; do
    cp "$tmp/package/$f" "$dest/$(basename "$f")"
  done
  rm -rf "$tmp"
  echo "$version" >"$dest/.version"
  echo "vendor-www: $name@$version -> $dest"
done
