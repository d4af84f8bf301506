#!/usr/bin/env python3
"""Container images without a registry: the Debian base, the pause image, the Kustos image.

Owns building images with buildah (Debian's) in a private storage directory and loading them
into a node's containerd with ``ctr images import``. The base image is a debootstrap root
filesystem (``base.sh``, cached); the pause image is that base running ``sleep infinity``;
the Kustos image is the project's ``Dockerfile`` built ``FROM`` the base (build arg ``BASE``)
with the wheels built on the host first (``pip wheel``, build arg ``WHEELS``), so the build
runs with ``--network none`` and needs no index.

Command line::

    images.py kustos --out FILE [--tag TAG]     # build the Kustos image into a docker-archive
    images.py example DIR --tag T --out FILE    # an example app's image (examples/*/Dockerfile)
    images.py pause --out FILE                  # the pause image (cached)
    images.py load --address SOCK FILE...       # import archives into a node's containerd
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "BASE_TAG_PREFIX",
    "PAUSE_TAG_PREFIX",
    "Builder",
    "base_rootfs",
    "build_example",
    "build_kustos",
    "load",
    "pause_archive",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(
    os.environ.get("KUSTOS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kustos"
)
BASE_TAG_PREFIX = "kustos.local/debian-python"
PAUSE_TAG_PREFIX = "kustos.local/pause"
# The name the manifests use (kustos:0.1.0, i.e. docker.io/library/kustos:0.1.0): imported
# under it, the overlays run unchanged with imagePullPolicy IfNotPresent.
KUSTOS_TAG = "docker.io/library/kustos:0.1.0"
# buildah's default runtime (crun) refuses the hybrid cgroups here; runc works.
RUNTIME = "/usr/sbin/runc"


class ImageError(RuntimeError):
    """An image could not be built or loaded."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def base_rootfs(extra: str = "") -> Path:
    """The cached Debian base root filesystem tarball (built on first use, ~1 min); ``extra``:
    more Debian packages in it (comma-separated)."""
    env = {**os.environ, "KUSTOS_BASE_EXTRA": extra}
    proc = subprocess.run(
        ["bash", str(HERE / "base.sh")], stdout=subprocess.PIPE, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        raise ImageError("tools/images/base.sh failed")
    return Path(proc.stdout.strip().splitlines()[-1])


def _key(path: Path) -> str:
    return path.stem.removeprefix("base-")


class Builder:
    """buildah with its own storage under ``root`` (so runs never share or leak state)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "storage.conf"
        conf.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{self.root / "graph"}"\n'
            f'runroot = "{self.root / "run"}"\n'
        )
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(conf),
            "BUILDAH_RUNTIME": RUNTIME,
            "BUILDAH_ISOLATION": "chroot",
            "TMPDIR": str(self._tmp()),
        }

    def _tmp(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        return tmp

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            ["buildah", *args], env=self.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ImageError(f"buildah {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
        return proc.stdout.strip()

    def has(self, tag: str) -> bool:
        return (
            subprocess.run(
                ["buildah", "inspect", "--type", "image", tag],
                env=self.env,
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )

    def from_rootfs(self, rootfs: Path, tag: str, entrypoint: str | None = None) -> str:
        """An image whose only layer is ``rootfs`` (a tarball); returns ``tag``."""
        if self.has(tag):
            return tag
        ctr = self.run("from", "scratch")
        try:
            self.run("add", ctr, str(rootfs), "/")
            path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            self.run("config", "--env", path, "--env", "LANG=C.UTF-8", ctr)
            if entrypoint:
                self.run("config", "--entrypoint", entrypoint, "--user", "65535:65535", ctr)
            self.run("commit", "--quiet", ctr, tag)
        finally:
            subprocess.run(["buildah", "rm", ctr], env=self.env, capture_output=True, check=False)
        return tag

    def save(self, tag: str, out: Path) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        self.run("push", "--quiet", tag, f"docker-archive:{tmp}:{tag}")
        tmp.rename(out)
        return out


def pause_archive() -> tuple[Path, str]:
    """The pause image's docker-archive (cached by the base's key) and its tag."""
    rootfs = base_rootfs()
    tag = f"{PAUSE_TAG_PREFIX}:{_key(rootfs)}"
    out = CACHE / f"pause-{_key(rootfs)}.tar"
    if out.exists():
        return out, tag
    _log(f"building the pause image {tag} from the Debian base")
    with tempfile.TemporaryDirectory(prefix="kustos-buildah-", dir=CACHE) as tmp:
        b = Builder(Path(tmp))
        b.from_rootfs(rootfs, tag, entrypoint='["/bin/sleep", "infinity"]')
        b.save(tag, out)
    return out, tag


def _wheels(dest: Path) -> None:
    """Wheels for kustos and its pinned dependencies (constraints.txt), built on the host
    (the host's pip may reach an index; the image build then needs none). Dependency wheels
    accumulate in the cache (pip finds the ones it has there); kustos's is built each time."""
    constraints = REPO / "constraints.txt"
    deps = CACHE / "wheels"
    deps.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet"]
    have = [
        *pip,
        "--find-links",
        str(deps),
        "--wheel-dir",
        str(deps),
        "--requirement",
        str(constraints),
    ]
    # Offline first: when the cache holds every pinned wheel, no index is asked at all.
    if subprocess.run([*have, "--no-index"], capture_output=True, check=False).returncode:
        _pip(have)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(deps, dest)
    _pip([*pip, "--no-deps", "--wheel-dir", str(dest), str(REPO)])


def _pip(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageError(f"pip wheel failed: {proc.stderr.strip()[-2000:]}")


def build_kustos(out: Path, workdir: Path, tag: str = KUSTOS_TAG) -> tuple[Path, str]:
    """Build the Kustos image from the Dockerfile FROM the local base, without network, and
    save it as a docker-archive at ``out``."""
    started = time.monotonic()
    rootfs = base_rootfs()
    b = Builder(workdir / "buildah")
    base_tag = b.from_rootfs(rootfs, f"{BASE_TAG_PREFIX}:{_key(rootfs)}")
    _log("building wheels on the host (pip wheel, pinned by constraints.txt)")
    _wheels(REPO / ".local" / "wheels")
    _log(f"  wheels ready ({time.monotonic() - started:.0f}s); buildah builds the Dockerfile")
    b.run(
        "build",
        "--quiet",
        "--pull=never",
        "--network=none",
        "--layers=false",
        "--build-arg",
        f"BASE={base_tag}",
        "--build-arg",
        "PIP_ARGS=--no-index --find-links=/src/.local/wheels",
        "--build-arg",
        "PACKAGE=kustos",
        "-f",
        str(REPO / "Dockerfile"),
        "-t",
        tag,
        str(REPO),
    )
    b.save(tag, out)
    size = out.stat().st_size >> 20
    _log(f"built {tag} in {time.monotonic() - started:.0f}s ({size} MiB archive)")
    return out, tag


def build_example(
    context: Path,
    tag: str,
    out: Path,
    workdir: Path,
    base_extra: str = "",
) -> tuple[Path, str]:
    """Build an example app's image from its Dockerfile (``context``) FROM the local base,
    without network: the wheels its ``requirements.txt`` pins are built on the host first
    (cached) and copied into the build context as ``.wheels``; for a ``package-lock.json``,
    ``npm ci --omit=dev`` fills the context's ``node_modules`` on the host (npm's cache in the
    cache directory). ``base_extra``: Debian packages the base needs besides python3 (e.g.
    ``nodejs``). Cached in the cache directory by the context's files and the base; ``out``
    receives the docker-archive."""
    import hashlib

    rootfs = base_rootfs(base_extra)
    digest = hashlib.sha256(_key(rootfs).encode())
    skip = {"node_modules", ".wheels", "__pycache__"}
    for f in sorted(
        p
        for p in context.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(context).parts)
    ):
        digest.update(f.relative_to(context).as_posix().encode() + b"\0" + f.read_bytes())
    cached = CACHE / f"example-{context.name}-{digest.hexdigest()[:16]}.tar"
    if not cached.exists():
        started = time.monotonic()
        b = Builder(workdir / "buildah")
        base_tag = b.from_rootfs(rootfs, f"{BASE_TAG_PREFIX}:{_key(rootfs)}")
        deps = CACHE / "wheels"
        deps.mkdir(parents=True, exist_ok=True)
        build = workdir / "context"
        shutil.rmtree(build, ignore_errors=True)
        shutil.copytree(context, build, ignore=shutil.ignore_patterns(*skip))
        if (context / "package-lock.json").exists():
            _npm_ci(build)
        if (context / "requirements.txt").exists():
            _example_wheels(context, build, deps)
        b.run(
            "build",
            "--quiet",
            "--pull=never",
            "--network=none",
            "--layers=false",
            "--build-arg",
            f"BASE={base_tag}",
            "--build-arg",
            "PIP_ARGS=--no-index --find-links=/src/.wheels",
            "-f",
            str(build / "Dockerfile"),
            "-t",
            tag,
            str(build),
        )
        b.save(tag, cached)
        _log(f"built {tag} in {time.monotonic() - started:.0f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, out)
    return out, tag


def _npm_ci(build: Path) -> None:
    proc = subprocess.run(
        [
            "npm",
            "ci",
            "--omit=dev",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--loglevel=error",
            "--cache",
            str(CACHE / "sdk" / "npm-cache"),
        ],
        cwd=build,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ImageError(f"npm ci failed: {proc.stderr.strip()[-2000:]}")


def _example_wheels(context: Path, build: Path, deps: Path) -> None:
    """The wheels ``requirements.txt`` pins, built on the host into the cache (offline
    first), then only those copied into the context's ``.wheels``."""
    pip = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--find-links",
        str(deps),
        "--wheel-dir",
        str(deps),
        "--requirement",
        str(context / "requirements.txt"),
    ]
    if subprocess.run([*pip, "--no-index"], capture_output=True, check=False).returncode:
        _pip(pip)
    _pip(
        [
            *pip[:-4],
            "--no-index",
            "--wheel-dir",
            str(build / ".wheels"),
            "--requirement",
            str(context / "requirements.txt"),
        ]
    )


def load(address: Path, *archives: Path) -> None:
    """Import docker-archives into the node's containerd (namespace k8s.io, where CRI looks)."""
    for archive in archives:
        proc = subprocess.run(
            [
                "ctr",
                f"--address={address}",
                "-n",
                "k8s.io",
                "images",
                "import",
                "--no-unpack=false",
                str(archive),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ImageError(f"ctr images import {archive} failed: {proc.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("kustos")
    k.add_argument("--out", type=Path, required=True)
    k.add_argument("--workdir", type=Path, default=REPO / ".local" / "image")
    k.add_argument("--tag", default=KUSTOS_TAG)
    e = sub.add_parser("example")
    e.add_argument("context", type=Path)
    e.add_argument("--tag", required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--workdir", type=Path, default=REPO / ".local" / "image")
    e.add_argument("--base-extra", default="", help="Debian packages the base needs (nodejs)")
    p = sub.add_parser("pause")
    p.add_argument("--out", type=Path)
    ld = sub.add_parser("load")
    ld.add_argument("--address", type=Path, required=True)
    ld.add_argument("archives", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "kustos":
            out, tag = build_kustos(args.out, args.workdir, args.tag)
            print(f"{out} {tag}")
        elif args.command == "example":
            out, tag = build_example(
                args.context.resolve(), args.tag, args.out, args.workdir, args.base_extra
            )
            print(f"{out} {tag}")
        elif args.command == "pause":
            out, tag = pause_archive()
            if args.out:
                shutil.copyfile(out, args.out)
            print(f"{out} {tag}")
        else:
            load(args.address, *args.archives)
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
