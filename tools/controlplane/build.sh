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

# Kubernetes 1.34 needs Go 1.24+. Debian 12's golang-go is 1.19, so when no recent enough go is
# on PATH, fetch the official toolchain as the Go module golang.org/toolchain from the module
# proxy (what `go` itself does for GOTOOLCHAIN) and check it against a pinned go.sum hash.
gover=go1.24.13
declare -A gosum=(
  [amd64]="h1:5sgfUhn9QCgVl4UYj32GrIYFHI3bi2UX55tNfupXwxc="
)
go_recent() {
  command -v go >/dev/null &&
    go version | awk '{split(substr($3, 3), v, "."); exit !(v[1] > 1 || (v[1] == 1 && v[2] >= 24))}'
}
if ! go_recent; then
  case "$(uname -m)" in
    x86_64) goarch=amd64 ;;
    *) echo "Go 1.24+ is required on $(uname -m) (https://go.dev/dl)" >&2; exit 1 ;;
  esac
  goroot="$cache/$gover.linux-$goarch"
  if [ ! -x "$goroot/bin/go" ]; then
    echo "fetching Go $gover from the Go module proxy into $goroot" >&2
    python3 - "$gover" "$goarch" "$goroot" "${gosum[$goarch]}" <<'PY'
import base64, hashlib, os, shutil, stat, sys, tempfile, urllib.request, zipfile
version, arch, root, want = sys.argv[1:]
proxies = [p for p in os.environ.get("GOPROXY", "https://proxy.golang.org").replace("|", ",").split(",")
           if p.startswith(("http://", "https://"))] or ["https://proxy.golang.org"]
mod = f"v0.0.1-{version}.linux-{arch}"
with tempfile.TemporaryFile() as tmp:
    with urllib.request.urlopen(f"{proxies[0].rstrip('/')}/golang.org/toolchain/@v/{mod}.zip", timeout=600) as r:
        shutil.copyfileobj(r, tmp)
    z = zipfile.ZipFile(tmp)
    names = sorted(z.namelist())
    summary = "".join(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in names)
    got = "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
    if got != want:
        sys.exit(f"golang.org/toolchain@{mod}: checksum mismatch: got {got}, want {want}")
    prefix = f"golang.org/toolchain@{mod}/"
    out = root + ".tmp"
    shutil.rmtree(out, ignore_errors=True)
    for n in names:
        if not n.startswith(prefix) or n.endswith("/") or ".." in n.split("/"):
            continue
        dest = os.path.join(out, n[len(prefix):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(n) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst)
        # Module zips carry no file modes; the go command marks these executable the same way.
        rel = n[len(prefix):]
        if rel.startswith("bin/") or rel.startswith("pkg/tool/"):
            os.chmod(dest, os.stat(dest).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.rename(out, root)
PY
  fi
  export PATH="$goroot/bin:$PATH" GOROOT="$goroot" GOTOOLCHAIN=local
fi
mkdir -p "$out.tmp"
export CGO_ENABLED=0 GOFLAGS=-trimpath
ldflags="-s -w"
# kubectl and the servers report this version (the build has no git metadata to read it from).
kver="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/k8s/go.mod")"
vpkg=k8s.io/component-base/version
ldflags="$ldflags -X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$(echo "$kver" | cut -d. -f2) -X $vpkg.gitTreeState=clean"
echo "building control plane $kver into $out (takes a while the first time)" >&2
(cd "$here/etcd" && go build -ldflags "-s -w" -o "$out.tmp/etcd" .)
(cd "$here/k8s" && go build -ldflags "$ldflags" -o "$out.tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
