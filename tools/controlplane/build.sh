#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the pinned Go modules
# beside this script, into a cache outside git keyed by the modules' content, and reuses them.
# Prints the directory holding the binaries.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KUSTOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kustos}"
key="$(cat "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/etcd/main.go | sha256sum | cut -c1-16)"
out="$cache/controlplane-$key"
want=(kube-apiserver kube-controller-manager kubectl etcd)
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

source "$here/go-toolchain.sh"
mkdir -p "$out.tmp"
ldflags="-s -w"
# kubectl and the servers report this version (the build has no git metadata to read it from).
kver="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/k8s/go.mod")"
vpkg=k8s.io/component-base/version
ldflags="$ldflags -X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$(echo "$kver" | cut -d. -f2) -X $vpkg.gitTreeState=clean"
echo "building control plane $kver into $out (takes a while the first time)" >&2
t_all=$SECONDS
(cd "$here/etcd" && go build -ldflags "-s -w" -o "$out.tmp/etcd" . && echo "  built etcd" >&2)
(cd "$here/k8s" && build_each "$out.tmp" "$ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
echo "control plane built in $((SECONDS - t_all))s" >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
