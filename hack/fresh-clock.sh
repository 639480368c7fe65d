#!/usr/bin/env bash
# Runs a command in a new time namespace whose monotonic and boot clocks read about 30 s, as on a machine booted
# a moment ago (CI runners usually are). Code that treats 0 as "long ago" against time.monotonic() passes on a
# machine up for hours and fails here. Root (as on CI) or an unprivileged user namespace is needed.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
command -v unshare >/dev/null 2>&1 || { echo "[fresh-clock] unshare (util-linux) is required" >&2; exit 1; }
uptime_s=$(cut -d. -f1 /proc/uptime)
offset=$((30 - uptime_s))
userns=()
[ "$(id -u)" -eq 0 ] || userns=(--user --map-root-user)
export MODELPACK_FRESH_CLOCK=1
exec unshare "${userns[@]}" --time --fork --monotonic="$offset" --boottime="$offset" -- "$@"
