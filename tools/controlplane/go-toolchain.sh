# Sourced by tools/*/build.sh: puts a Go 1.24+ toolchain on PATH (fetched once into $cache)
# and defines `build_each OUT LDFLAGS PKG...`, which builds one command at a time and prints
# each one's name and elapsed time (a cold build takes minutes per binary).
# Expects $cache to be set.
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

export CGO_ENABLED=0 GOFLAGS=-trimpath

# build_each OUT LDFLAGS PKG...: `go build` each package into OUT, with progress on stderr
# (a line per binary when it starts and ends, and a heartbeat every 30 s while it builds).
build_each() {
  local out="$1" ldflags="$2" pkg name t0 ticker rc
  shift 2
  for pkg in "$@"; do
    name="${pkg##*/}"
    [ "$name" = "." ] && name="$(basename "$PWD")"
    t0=$SECONDS
    echo "  building $name ..." >&2
    # Its stdout is not ours: a `sleep` outliving the kill must not hold the caller's pipe
    # (build.sh prints the directory on stdout, which the Python callers read to EOF).
    ( while sleep 30; do echo "    still building $name ($((SECONDS - t0))s)" >&2; done ) >/dev/null &
    ticker=$!
    rc=0
    go build -ldflags "$ldflags" -o "$out/$name" "$pkg" || rc=$?
    kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
    if [ "$rc" != 0 ]; then echo "  building $name failed (exit $rc)" >&2; return "$rc"; fi
    echo "  built $name in $((SECONDS - t0))s" >&2
  done
}
