#!/usr/bin/env bash
# Builds the External Secrets Operator controller (the pinned release in go.mod beside this
# script) from the Go module proxy into the Kustos cache, with the CRDs of the same release,
# and reuses them. Prints the directory (external-secrets, crds.yaml). Opt-in: only the ESO
# test tier (KUSTOS_TEST_ESO=1) needs it; a cold build compiles every provider's SDK and takes
# tens of minutes of CPU.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KUSTOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kustos}"
key="$(cat "$here"/go.mod "$here"/go.sum | sha256sum | cut -c1-16)"
out="$cache/eso-$key"
if [ -x "$out/external-secrets" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
if [ -x "$out/external-secrets" ]; then echo "$out"; exit 0; fi
source "$here/../controlplane/go-toolchain.sh"
ver="$(sed -n 's/^require github.com\/external-secrets\/external-secrets \(v[0-9.]*\)$/\1/p' "$here/go.mod")"
mkdir -p "$out.tmp"
echo "building external-secrets $ver into $out" >&2
(cd "$here" && build_each "$out.tmp" "-s -w" github.com/external-secrets/external-secrets)
src="$(cd "$here" && go list -m -f '{{.Dir}}' github.com/external-secrets/external-secrets)"
cp "$src/deploy/crds/bundle.yaml" "$out.tmp/crds.yaml"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
