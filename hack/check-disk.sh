#!/usr/bin/env bash
# Warns (never fails) when the disk is too full for the test venv: PyPI's torch pulls in ~4 GiB of CUDA
# libraries, and pip's "No space left on device" midway through an install names nothing useful.
set -euo pipefail
need_gib=${1:-8}
for dir in . "${TMPDIR:-/tmp}"; do
  free_kib=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
  if [ "$free_kib" -lt $((need_gib * 1024 * 1024)) ]; then
    echo "warning: $((free_kib / 1024 / 1024)) GiB free on $(df -P "$dir" | awk 'NR==2 {print $6}') (for $dir);" \
      "the test venv needs about ${need_gib} GiB (torch with its CUDA libraries from PyPI) and may fail" >&2
  fi
done
