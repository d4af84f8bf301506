"""Exit 0 when the kubeconfig given as argv[1] (or $KUBECONFIG) reaches a cluster's /readyz."""

from __future__ import annotations

import os
import sys


def main() -> int:
    path = (sys.argv[1] if len(sys.argv) > 1 else "") or os.environ.get("KUBECONFIG", "")
    if not path or not os.path.exists(path):
        return 1
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=path)
        api.configuration.retries = 0
        client.VersionApi(api).get_code(_request_timeout=3)
    except Exception:  # any failure means "not reachable"
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
