#!/usr/bin/env bash
# Builds the helm CLI from the pinned Go module beside this script into the cache the
# control plane uses (keyed by the module's content) and reuses it. Prints the directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KUSTOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kustos}"
key="$(cat "$here"/go.mod "$here"/go.sum | sha256sum | cut -c1-16)"
out="$cache/helm-$key"
if [ -x "$out/helm" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
if [ -x "$out/helm" ]; then echo "$out"; exit 0; fi
source "$here/../controlplane/go-toolchain.sh"
hver="$(sed -n 's/^require helm.sh\/helm\/v3 \(v[0-9.]*\)$/\1/p' "$here/go.mod")"
mkdir -p "$out.tmp"
echo "building helm $hver into $out" >&2
(cd "$here" && build_each "$out.tmp" "-s -w -X helm.sh/helm/v3/internal/version.version=$hver" \
  helm.sh/helm/v3/cmd/helm)
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
