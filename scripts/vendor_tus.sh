#!/usr/bin/env bash
# Vendor tus-js-client 4.x (the browser side of the resumable video upload, app/tus) from the npm
# registry into static/vendor/tus-js-client/ with its licence, version and an SRI hash. Its source map
# is left out: the minified file's sourceMappingURL then points nowhere, which only devtools notice.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-4.x}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "tus-js-client@$version" >/dev/null)
tar -xzf "$tmp"/tus-js-client-*.tgz -C "$tmp"
dest=static/vendor/tus-js-client
mkdir -p "$dest"
cp "$tmp/package/dist/tus.min.js" "$dest/tus.min.js"
cp "$tmp/package/LICENSE" "$dest/LICENSE"
node -e 'console.log(require(process.argv[1]).version)' "$tmp/package/package.json" > "$dest/VERSION"
echo "sha384-$(openssl dgst -sha384 -binary "$dest/tus.min.js" | openssl base64 -A)" > "$dest/INTEGRITY"
echo "tus-js-client $(cat "$dest/VERSION") vendored; integrity $(cat "$dest/INTEGRITY")"
