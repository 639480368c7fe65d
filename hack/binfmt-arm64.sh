#!/usr/bin/env bash
# Registers qemu-user-static as the kernel's interpreter for aarch64 ELF binaries, so the arm64 (Graviton) build of
# Dockerfile.server and its test (tests/arm64) run here under emulation. Idempotent: a correct registration is left
# alone, a missing one is made, one without the F flag is replaced.
# - The line written is Debian's own, /usr/lib/binfmt.d/qemu-aarch64.conf from qemu-user-static (what systemd-binfmt
#   or binfmt-support would register at boot): magic/mask of an aarch64 ELF, interpreter
#   /usr/libexec/qemu-binfmt/aarch64-binfmt-P, flags OPF.
# - F (fix binary) makes the kernel open the interpreter once, at registration, so it is found inside containers and
#   chroots (buildah RUN steps, debootstrap's second stage) whose root filesystem has no qemu.
# - This is a host-wide kernel setting (any aarch64 binary on the host then runs under qemu); it is undone with
#   `echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64`. Needs root; binfmt_misc is mounted if it is not.
set -euo pipefail
BINFMT=/proc/sys/fs/binfmt_misc
CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
log() { echo "[binfmt-arm64] $*" >&2; }
case "$(uname -m)" in aarch64|arm64) log "host is $(uname -m): nothing to emulate"; exit 0 ;; esac
[ -r "$CONF" ] || { log "$CONF missing: install qemu-user-static (hack/system-deps.sh)"; exit 1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -e "$BINFMT/register" ]; then
  log "mounting binfmt_misc on $BINFMT"
  $SUDO mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
line=$(grep -v '^#' "$CONF" | grep -m1 '^:qemu-aarch64:')
name=$(echo "$line" | cut -d: -f2)
interp=$(echo "$line" | cut -d: -f7)
entry="$BINFMT/$name"
if [ -e "$entry" ]; then
  if grep -qx enabled "$entry" && grep -q "^interpreter $interp\$" "$entry" && grep -q '^flags: .*F' "$entry"; then
    exit 0
  fi
  log "replacing $entry (disabled, another interpreter, or no F flag)"
  echo -1 | $SUDO tee "$entry" >/dev/null
fi
[ -x "$interp" ] || { log "interpreter $interp missing: install qemu-user-static (hack/system-deps.sh)"; exit 1; }
echo "$line" | $SUDO tee "$BINFMT/register" >/dev/null
grep -q '^flags: .*F' "$entry" || { log "registered $entry without the F flag:"; cat "$entry" >&2; exit 1; }
log "registered $name -> $interp (flags $(sed -n 's/^flags: //p' "$entry"))"
