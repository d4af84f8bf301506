#!/usr/bin/env bash
# Installs the Debian packages the test tiers need when they are missing: PostgreSQL (15+)
# and MariaDB servers for the rotation tests. Needs root (or sudo) and apt.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start system-wide services; the tests run their own throwaway servers.
for svc in postgresql mariadb; do $sudo service "$svc" stop >/dev/null 2>&1 || true; done
