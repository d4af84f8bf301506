#!/usr/bin/env bash
# Builds kubelet, kube-scheduler and kube-proxy from the pinned Go module beside this script
# (k8s/go.mod: the same Kubernetes version as tools/controlplane/k8s/go.mod, checked below)
# into the cache the control plane uses, keyed by the module's content, and reuses them.
# With the control plane's Go build cache warm: ~1 min; cold: ~4 min. Prints the directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cp_here="$here/../controlplane"
cache="${KUSTOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kustos}"
kver="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/k8s/go.mod")"
cpver="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$cp_here/k8s/go.mod")"
if [ -z "$kver" ] || [ "$kver" != "$cpver" ]; then
  echo "tools/node/k8s pins Kubernetes '$kver' but the control plane pins '$cpver'" >&2
  exit 1
fi
key="$(cat "$here"/k8s/go.mod "$here"/k8s/go.sum | sha256sum | cut -c1-16)"
out="$cache/node-$key"
want=(kubelet kube-scheduler kube-proxy)
have=1
for b in "${want[@]}"; do [ -x "$out/$b" ] || have=0; done
if [ "$have" = 1 ]; then echo "$out"; exit 0; fi

# One build at a time per cache (test runs and `make` may start together); whoever waited
# finds the binaries built.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
have=1
for b in "${want[@]}"; do [ -x "$out/$b" ] || have=0; done
if [ "$have" = 1 ]; then echo "$out"; exit 0; fi

source "$cp_here/go-toolchain.sh"
mkdir -p "$out.tmp"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$(echo "$kver" | cut -d. -f2) -X $vpkg.gitTreeState=clean"
echo "building node $kver (kubelet, kube-scheduler, kube-proxy) into $out" >&2
t_all=$SECONDS
(cd "$here/k8s" && build_each "$out.tmp" "$ldflags" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy)
echo "node binaries built in $((SECONDS - t_all))s" >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
