#!/usr/bin/env bash
# Vendor htmx 2.0.x from the npm registry into static/vendor/htmx/ with its licence and an SRI hash.
# Stay on 2.x: npm's `latest` is 4.x, which changes inheritance, swaps 4xx bodies and drops 286.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-2.0.x}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$version" >/dev/null)
tar -xzf "$tmp"/htmx.org-*.tgz -C "$tmp"
dest=static/vendor/htmx
mkdir -p "$dest"
cp "$tmp/package/dist/htmx.min.js" "$dest/htmx.min.js"
cp "$tmp/package/LICENSE" "$dest/LICENSE"
node -e 'console.log(require(process.argv[1]).version)' "$tmp/package/package.json" > "$dest/VERSION"
echo "sha384-$(openssl dgst -sha384 -binary "$dest/htmx.min.js" | openssl base64 -A)" > "$dest/INTEGRITY"
echo "htmx $(cat "$dest/VERSION") vendored; integrity $(cat "$dest/INTEGRITY")"
