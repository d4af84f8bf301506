#!/usr/bin/env bash
# Installs the Debian packages the local node and the image builds need, when missing:
# containerd (1.6) and runc to run pods, the CNI plugins (bridge, host-local, loopback,
# portmap), conntrack and iptables for kube-proxy, socat for port-forward, and buildah plus
# debootstrap to build images without a registry. Needs root (or sudo) and apt.
set -euo pipefail
missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v conntrack >/dev/null 2>&1 || [ -x /usr/sbin/conntrack ] || missing+=(conntrack)
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} from apt" >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d keeps the packages from starting a system-wide containerd: each cluster runs
# its own on a private socket.
$sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d.kustos'
if [ ! -e /usr/sbin/policy-rc.d ]; then
  $sudo cp /usr/sbin/policy-rc.d.kustos /usr/sbin/policy-rc.d && $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo rm -f /usr/sbin/policy-rc.d.kustos
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
$sudo service containerd stop >/dev/null 2>&1 || true
