"""Plot `bench/api_load.py --json` output: throughput and p99 latency vs concurrency, one
line per server (Kustos before/after, the kube-apiserver), one column per load mode.

    .venv/bin/python bench/plot_api.py results.json docs/api-throughput.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TITLES = {
    "wrk": "bearer token on both sides (wrk)",
    "sigv4": "Kustos SigV4 vs apiserver bearer (Python client)",
}


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    modes = list(dict.fromkeys(r["mode"] for r in data["results"]))
    servers = [*data["sides"], "apiserver"]
    fig, axes = plt.subplots(2, len(modes), figsize=(6 * len(modes), 8), squeeze=False)
    for col, mode in enumerate(modes):
        rows = [r for r in data["results"] if r["mode"] == mode]
        xs = [r["concurrency"] for r in rows]
        for server in servers:
            style = "--" if server == "apiserver" else ("-" if "after" in server else ":")
            label = (
                "kube-apiserver GET Secret"
                if server == "apiserver"
                else f"Kustos GetSecretValue ({server})"
            )
            nan = float("nan")  # a run that completed no request has no latency to show
            axes[0][col].plot(xs, [r[server]["rps"] for r in rows], style, marker="o", label=label)
            axes[1][col].plot(
                xs,
                [r[server]["p99"] if r[server]["n"] else nan for r in rows],
                style,
                marker="o",
                label=label,
            )
        for row, ylabel in ((0, "requests/s"), (1, "p99 latency, ms")):
            ax = axes[row][col]
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.set_xlabel("concurrency (closed-loop connections)")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
        axes[1][col].set_yscale("log")
        axes[0][col].set_title(TITLES.get(mode, mode))
        axes[0][col].legend(fontsize=8)
    load = data.get("load_average", [0, 0])
    fig.suptitle(
        f"GetSecretValue vs GET Secret, 2 shared vCPUs, {data['seconds']:.0f} s per "
        f"point (load average {load[0]:.0f}-{load[1]:.0f}: busy machine)"
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
