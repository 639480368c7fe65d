#!/usr/bin/env bash
# System packages the test suite needs beyond Python and Go. Installs only what is missing, so a prepared machine
# pays nothing:
# - headless Chromium renders the HTML report in a test; openssl issues the test control plane's certificates;
# - the real node (tests/cluster/realnode.py): containerd + runc run the pods, the CNI plugins wire them into a
#   bridge, iptables + conntrack are kube-proxy's data path, buildah builds the images from the Dockerfiles,
#   debootstrap makes their Debian base, qemu-user-static runs the arm64 build of the server image
#   (registered with binfmt_misc by hack/binfmt-arm64.sh), busybox-static
#   is the probe pods' image.
set -euo pipefail
missing=()
need() {  # need COMMAND-OR-PATH PACKAGE
  case "$1" in
    /*) [ -e "$1" ] || missing+=("$2") ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing+=("$2") ;;
  esac
}
need chromium chromium
need openssl openssl
need containerd containerd
need runc runc
need /usr/lib/cni/bridge containernetworking-plugins
need iptables iptables
need conntrack conntrack
need buildah buildah
need debootstrap debootstrap
need qemu-aarch64-static qemu-user-static
need /bin/busybox busybox-static  # the real-node probe pods' image
if [ ${#missing[@]} -gt 0 ]; then
  echo "[system-deps] installing: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The arm64 image build and its test run aarch64 binaries under qemu: register the interpreter (idempotent).
"$(dirname "$0")/binfmt-arm64.sh"
command -v go >/dev/null 2>&1 || { echo "[system-deps] Go >= 1.24 is required to build the test control plane" >&2; exit 1; }
