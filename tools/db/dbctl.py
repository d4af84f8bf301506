#!/usr/bin/env python3
"""Throwaway PostgreSQL and MariaDB servers for rotation tests, demos and benchmarks.

    python tools/db/dbctl.py up    [--state-dir .local/db]   start both (idempotent)
    python tools/db/dbctl.py down  [--state-dir .local/db]   stop both (data is kept)
    python tools/db/dbctl.py env   [--state-dir .local/db]   print env.json
    python tools/db/dbctl.py purge [--state-dir .local/db]   stop both and delete the data

Both servers listen on 127.0.0.1 only (but see "For pods" below), on free ports chosen at
first start (kept across restarts while free), run as the current user (as root: PostgreSQL
runs as the `postgres` system user, which refuses root; MariaDB runs with `--user=root`), and
never touch the system's sockets or config files (`--no-defaults`, private sockets under the
state dir).

- PostgreSQL: scram-sha-256 everywhere, `log_statement=all` into `<state>/pg/server.log` (so
  tests can check no password reaches the server log), TLS on with a self-signed certificate
  for `localhost`/`127.0.0.1` (`<state>/tls/server.crt` doubles as the CA for verify-full).
- MariaDB: general log on into `<state>/mariadb/general.log`, the same certificate for TLS,
  anonymous accounts removed, `--skip-name-resolve`.

For pods (`up --for-pods`, or `up(state, pods=PodNetwork(...))` from the test fixtures),
PostgreSQL also listens on the node's bridge address (`tools/node/node.py`: GATEWAY), pg_hba
lets the pod range in with TLS and scram-sha-256 only (`hostssl`; plain connections from
pods are refused), and the certificate's SAN also covers that address and the DNS names
given (e.g. a Service's `postgres.<ns>.svc`), so pods can use `sslmode=verify-full` with
`<state>/tls/server.crt` as the CA. Without it nothing but loopback is served.

`<state>/env.json` holds what clients need: hosts, ports, admin credentials (throwaway, made
up at first start), log paths, the CA path. Missing server binaries are installed with
apt-get when running as root on Debian (packages `postgresql`, `mariadb-server`).
Standard library only: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_BIN_CANDIDATES = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14, 13)]
ADMIN_USER = "kustos_admin"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE = REPO / ".local" / "db"


@dataclass(frozen=True)
class PodNetwork:
    """Where pods reach the host: the node's bridge address and the pod range."""

    address: str
    cidr: str
    dns_names: tuple[str, ...] = field(default=())


def node_pod_network(dns_names: tuple[str, ...] = ()) -> PodNetwork:
    """The local node's bridge address and pod range, from `tools/node/node.py`."""
    import importlib.util

    name = "kustos_tools_node"  # the name tools/controlplane/cluster.py loads it under
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "node" / "node.py")
        assert spec
        assert spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    node = sys.modules[name]
    return PodNetwork(str(node.GATEWAY), str(node.POD_CIDR), dns_names)


def _is_root() -> bool:
    return os.geteuid() == 0


def _run(
    cmd: list[str], *, as_postgres: bool = False, **kw: Any
) -> subprocess.CompletedProcess[str]:
    if as_postgres and _is_root():
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def _apt_install(*packages: str) -> None:
    if not _is_root() or not shutil.which("apt-get"):
        raise SystemExit(f"missing binaries: install {' '.join(packages)} (needs root/apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # policy-rc.d-less containers may start the system services; we never use them.
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env)


def pg_bindir() -> Path:
    for cand in PG_BIN_CANDIDATES:
        if (cand / "initdb").exists():
            return cand
    _apt_install("postgresql", "openssl")
    return pg_bindir()


def mariadb_bins() -> tuple[str, str]:
    daemon = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    if not daemon or not install:
        _apt_install("mariadb-server", "openssl")
        return mariadb_bins()
    return daemon, install


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the servers do: connections of a stopped server in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def mysql_greets(port: int) -> bool:
    """Whether a MySQL server on `port` sends its handshake (not an error packet) yet."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
        s.settimeout(1)
        greeting = s.recv(64)
        return len(greeting) > 5 and greeting[4] != 0xFF
    return False


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def ensure_tls(state: Path, pods: PodNetwork | None = None) -> tuple[Path, Path]:
    """The server certificate (self-signed: it is its own CA); made again when `pods`
    asks for names the existing one does not cover."""
    tls = state / "tls"
    crt, key = tls / "server.crt", tls / "server.key"
    san = "DNS:localhost,IP:127.0.0.1"
    if pods is not None:
        san += f",IP:{pods.address}" + "".join(f",DNS:{n}" for n in pods.dns_names)
    san_file = tls / "san.txt"
    old_san = san_file.read_text().strip() if san_file.exists() else "DNS:localhost,IP:127.0.0.1"
    if not crt.exists() or (pods is not None and old_san != san):
        if not shutil.which("openssl"):
            _apt_install("openssl")
        tls.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/CN=localhost",
                "-keyout",
                str(key),
                "-out",
                str(crt),
                "-addext",
                f"subjectAltName={san}",
            ]
        )
        key.chmod(0o600)
        san_file.write_text(san + "\n")
    return crt, key


def _load(state: Path) -> dict[str, Any]:
    path = state / "env.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return data


def _save(state: Path, env: dict[str, Any]) -> None:
    path = state / "env.json"
    path.write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)


def _open_path_for_postgres(path: Path) -> None:
    """As root, let the postgres user traverse down to `path` (temp dirs are 0700)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


# --------------------------------------------------------------------------- PostgreSQL
def pg_up(state: Path, pods: PodNetwork | None = None) -> dict[str, Any]:
    env: dict[str, Any] = _load(state).get("postgresql", {})
    bindir = pg_bindir()
    data = state / "pg" / "data"
    log = state / "pg" / "server.log"
    if pods is None and env.get("pod_address"):  # a restart keeps what the first start set
        pods = PodNetwork(env["pod_address"], env["pod_cidr"], tuple(env.get("pod_dns", ())))
    crt, key = ensure_tls(state, pods)
    if not (data / "PG_VERSION").exists():
        password = env.get("admin_password") or secrets.token_urlsafe(24)
        (state / "pg").mkdir(parents=True, exist_ok=True)
        pwfile = state / "pg" / "pwfile"
        pwfile.write_text(password + "\n")
        pg_key = state / "pg" / "server.key"
        shutil.copy(crt, state / "pg" / "server.crt")
        shutil.copy(key, pg_key)
        if _is_root():
            _open_path_for_postgres(state)
            shutil.chown(state / "pg", "postgres", "postgres")
            for f in (pwfile, pg_key, state / "pg" / "server.crt"):
                shutil.chown(f, "postgres", "postgres")
        pg_key.chmod(0o600)
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                ADMIN_USER,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            as_postgres=True,
        )
        pwfile.unlink()
        listen = "127.0.0.1" if pods is None else f"127.0.0.1,{pods.address}"
        if pods is not None:
            # Pods: TLS and scram only. initdb's lines admit loopback alone.
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write(f"\n# kustos dbctl: pods\nhostssl all all {pods.cidr} scram-sha-256\n")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# kustos dbctl\nlisten_addresses = '{listen}'\nunix_socket_directories = ''\n"
                "log_statement = 'all'\nlog_connections = on\n"
                "password_encryption = 'scram-sha-256'\n"
                f"ssl = on\nssl_cert_file = '{state / 'pg' / 'server.crt'}'\n"
                f"ssl_key_file = '{pg_key}'\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\nmax_connections = 200\n"
            )
        env = {"admin_user": ADMIN_USER, "admin_password": password}
        if pods is not None:
            env.update(pod_address=pods.address, pod_cidr=pods.cidr, pod_dns=list(pods.dns_names))
    elif pods is not None and env.get("pod_address") != pods.address:
        raise SystemExit(f"{data} was made without --for-pods: purge it first")
    port = int(env.get("port") or 0)
    if not _pid_alive(data / "postmaster.pid"):
        if not port or not port_free(port):
            port = free_port()
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port}",
                "start",
            ],
            as_postgres=True,
        )
    env.update(
        host="127.0.0.1",
        port=port,
        database="postgres",
        log_path=str(log),
        data_dir=str(data),
        bindir=str(bindir),
        ca_path=str(crt),
    )
    return env


def pg_down(state: Path) -> None:
    env = _load(state).get("postgresql")
    data = state / "pg" / "data"
    if env and _pid_alive(data / "postmaster.pid"):
        _run(
            [str(Path(env["bindir"]) / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            as_postgres=True,
        )


# --------------------------------------------------------------------------- MariaDB
def _mariadb_args(state: Path, port: int) -> list[str]:
    d = state / "mariadb"
    crt, key = ensure_tls(state)
    user = ["--user=root"] if _is_root() else []
    return [
        "--no-defaults",
        *user,
        f"--datadir={d / 'data'}",
        f"--socket={d / 'mysqld.sock'}",
        f"--pid-file={d / 'mysqld.pid'}",
        f"--log-error={d / 'error.log'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--skip-name-resolve",
        "--general-log=1",
        f"--general-log-file={d / 'general.log'}",
        f"--ssl-cert={crt}",
        f"--ssl-key={key}",
        f"--ssl-ca={crt}",
        "--innodb-buffer-pool-size=32M",
        "--innodb-flush-log-at-trx-commit=0",
        "--skip-log-bin",
        "--max-connections=200",
    ]


def mariadb_up(state: Path) -> dict[str, Any]:
    env: dict[str, Any] = _load(state).get("mariadb", {})
    daemon, install = mariadb_bins()
    d = state / "mariadb"
    init_sql = d / "init.sql"
    if not (d / "data" / "mysql").exists():
        d.mkdir(parents=True, exist_ok=True)
        password = env.get("admin_password") or secrets.token_urlsafe(24)
        user = ["--user=root"] if _is_root() else []
        _run(
            [
                install,
                "--no-defaults",
                *user,
                f"--datadir={d / 'data'}",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ]
        )
        # Our own generated password (token_urlsafe: no quotes), no user input.
        init_sql.write_text(
            "DELETE FROM mysql.global_priv WHERE User='';\nFLUSH PRIVILEGES;\n"  # noqa: S608
            f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n"
        )
        init_sql.chmod(0o600)
        env = {"admin_user": ADMIN_USER, "admin_password": password}
    port = int(env.get("port") or 0)
    pidfile = d / "mysqld.pid"
    if not _pid_alive(pidfile):
        if not port or not port_free(port):
            port = free_port()
        args = [daemon, *_mariadb_args(state, port)]
        if init_sql.exists():
            args.append(f"--init-file={init_sql}")
        with (d / "stdout.log").open("ab") as out:
            subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not (_pid_alive(pidfile) and mysql_greets(port)):
            if time.monotonic() > deadline:
                raise SystemExit(f"mariadbd did not start; see {d / 'error.log'}")
            time.sleep(0.1)
        init_sql.unlink(missing_ok=True)
    env.update(
        host="127.0.0.1",
        port=port,
        database="mysql",
        log_path=str(d / "general.log"),
        error_log=str(d / "error.log"),
        data_dir=str(d / "data"),
        socket=str(d / "mysqld.sock"),
        pid_file=str(pidfile),
        ca_path=str(state / "tls" / "server.crt"),
    )
    return env


def mariadb_down(state: Path) -> None:
    pid = _pid_alive(state / "mariadb" / "mysqld.pid")
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _pid_alive(state / "mariadb" / "mysqld.pid") and time.monotonic() < deadline:
        time.sleep(0.1)


# --------------------------------------------------------------------------- commands
def up(state: Path, only: str | None = None, pods: PodNetwork | None = None) -> dict[str, Any]:
    """Start both servers (or `only` "postgresql" / "mariadb"); returns env.json's content.
    `pods`: PostgreSQL also serves the pod network (see the module docstring)."""
    state.mkdir(parents=True, exist_ok=True)
    env = _load(state)
    if only in (None, "postgresql"):
        env["postgresql"] = pg_up(state, pods)
        _save(state, env)
    if only in (None, "mariadb"):
        env["mariadb"] = mariadb_up(state)
        _save(state, env)
    return env


def down(state: Path, only: str | None = None) -> None:
    if only in (None, "postgresql"):
        pg_down(state)
    if only in (None, "mariadb"):
        mariadb_down(state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "env", "purge"])
    parser.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("KUSTOS_DB_STATE", DEFAULT_STATE))
    )
    parser.add_argument(
        "--for-pods",
        action="store_true",
        help="PostgreSQL also listens on the local node's bridge address (TLS + scram from "
        "the pod range only)",
    )
    parser.add_argument(
        "--dns-name",
        action="append",
        default=[],
        help="with --for-pods: a DNS name the certificate covers too (repeatable)",
    )
    args = parser.parse_args(argv)
    state: Path = args.state_dir.resolve()
    if args.command == "up":
        up(state, pods=node_pod_network(tuple(args.dns_name)) if args.for_pods else None)
        print(f"databases up; connection details in {state / 'env.json'}", file=sys.stderr)
    elif args.command == "down":
        down(state)
    elif args.command == "purge":
        down(state)
        shutil.rmtree(state, ignore_errors=True)
    else:
        print(json.dumps(_load(state), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
