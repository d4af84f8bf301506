#!/usr/bin/env bash
# Installs the toolchains the SDK tests need when they are missing (Debian packages): Node.js
# with npm (AWS SDK for JavaScript v3), a JDK and Maven (AWS SDK for Java 2.x). Go comes from
# tools/controlplane (it fetches a recent toolchain when none is installed). Needs root (or
# sudo) and apt; without apt it says what is missing and the tests skip with that reason.
set -euo pipefail
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "SDK tests: missing ${missing[*]} and no apt-get; those tests will skip" >&2
  exit 0
fi
echo "installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
