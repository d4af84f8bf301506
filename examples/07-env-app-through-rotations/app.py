"""An app that reads its database credentials from environment variables (the projected
Secret's keys, through `secretKeyRef`), so it sees new ones only when its pod restarts, and
runs a query every QUERY_INTERVAL_SECONDS, each on a new connection (every query proves the
credentials still log in). It never prints a credential: its log and its report carry the
user name and a fingerprint of the password (the first 12 hex digits of its SHA-256).

- Ready (GET :8080/ready) once a query succeeded and while the last one did; Kubernetes's
  rolling update waits for it before it stops an old pod.
- On SIGTERM it stops querying (an old pod being replaced takes no more work) and exits;
  with DRAIN_SECONDS it goes on querying that long first (unready), as an app behind a
  Service does while the endpoints that still send it requests catch up.
- With REPORT_DIR set, it keeps `<REPORT_DIR>/<POD_NAME>.json` current (counts, the first
  successful query's time, the last errors), so the counts outlive the pod.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import threading
import time
from typing import Any

import psycopg

ENV = os.environ
POD = ENV.get("POD_NAME", "app")
INTERVAL = float(ENV.get("QUERY_INTERVAL_SECONDS", "0.05"))
DRAIN = float(ENV.get("DRAIN_SECONDS", "0"))
REPORT_DIR = ENV.get("REPORT_DIR", "")
stopping = threading.Event()
ready = threading.Event()
state: dict[str, Any] = {
    "pod": POD,
    "user": ENV["DB_USER"],
    "password_sha": hashlib.sha256(ENV["DB_PASSWORD"].encode()).hexdigest()[:12],
    "started": time.time(),
    "first_ok": None,
    "last_ok": None,
    "ok": 0,
    "failed": 0,
    "errors": [],
    "stopped": None,
}


def report() -> None:
    if not REPORT_DIR:
        return
    path = os.path.join(REPORT_DIR, f"{POD}.json")
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)  # whole files only: a reader never sees half a report


def query() -> None:
    with psycopg.connect(
        host=ENV["DB_HOST"],
        port=int(ENV["DB_PORT"]),
        user=ENV["DB_USER"],
        password=ENV["DB_PASSWORD"],
        dbname=ENV["DB_NAME"],
        connect_timeout=10,
        application_name=POD,
    ) as conn:
        conn.execute("SELECT 1").fetchone()


class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if ready.is_set() and "terminating" not in state else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def drain(draining: threading.Event) -> None:
    draining.wait()
    state["terminating"] = time.time()
    ready.clear()
    stopping.wait(DRAIN)
    stopping.set()


def main() -> None:
    draining = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: draining.set())
    threading.Thread(target=drain, args=(draining,), daemon=True).start()
    server = http.server.ThreadingHTTPServer(("", 8080), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{POD}: querying as {state['user']} (password sha256 {state['password_sha']})")
    last_report = 0.0
    while not stopping.is_set():
        try:
            query()
        except psycopg.Error as error:
            ready.clear()
            state["failed"] += 1
            why = f"{type(error).__name__}: {str(error).strip()[:160]}"
            state["errors"] = [*state["errors"][-9:], [time.time(), why]]
            print(f"{POD}: query failed: {why}", flush=True)
            report()
        else:
            now = time.time()
            state["ok"] += 1
            state["last_ok"] = now
            if state["first_ok"] is None:
                state["first_ok"] = now
                report()
            ready.set()
        if time.monotonic() - last_report > 0.5:
            last_report = time.monotonic()
            report()
        stopping.wait(INTERVAL)
    state["stopped"] = time.time()
    report()
    print(f"{POD}: stopped after {state['ok']} queries, {state['failed']} failed", flush=True)


if __name__ == "__main__":
    main()
