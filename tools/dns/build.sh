#!/usr/bin/env bash
# Builds CoreDNS (the node's cluster DNS) from the pinned Go module beside this script: the
# small main package in coredns/ links only the plugins the node uses, so the build compiles
# CoreDNS's core, its kubernetes plugin and client-go, not its ~60 other plugins and their
# cloud SDKs. Cached like the control plane (keyed by the module's content) and reused.
# Prints the directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KUSTOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kustos}"
key="$(cat "$here"/go.mod "$here"/go.sum "$here"/coredns/main.go | sha256sum | cut -c1-16)"
out="$cache/coredns-$key"
if [ -x "$out/coredns" ]; then echo "$out"; exit 0; fi

# One build at a time per cache (test runs and `make` may start together); whoever waited
# finds the binary built.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
if [ -x "$out/coredns" ]; then echo "$out"; exit 0; fi

source "$here/../controlplane/go-toolchain.sh"
cver="$(sed -n 's/^require github.com\/coredns\/coredns \(v[0-9.]*\)$/\1/p' "$here/go.mod")"
mkdir -p "$out.tmp"
echo "building coredns $cver (kubernetes, cache, errors, log, bind) into $out" >&2
t_all=$SECONDS
(cd "$here" && build_each "$out.tmp" "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$cver" \
  kustos.io/tools/dns/coredns)
echo "coredns built in $((SECONDS - t_all))s" >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
