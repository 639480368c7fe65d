#!/usr/bin/env bash
# Builds what the tests run, before pytest: the Go binaries (CPU-bound compiles) and the two images (mostly
# debootstrap, pip and layer I/O) at the same time, so on a cold machine the image builds hide behind the
# compiles instead of adding to them. Each is cached; with warm caches this is a few seconds.
# Usage: hack/build-all.sh PYTHON
set -uo pipefail
py=${1:?usage: hack/build-all.sh PYTHON}
began=$SECONDS
"$py" -m tests.cluster.modelpack_images &
images=$!
"$py" -m tests.cluster.binaries
binaries_rc=$?
wait "$images"
images_rc=$?
echo "[build-all] binaries rc=$binaries_rc, images rc=$images_rc, $((SECONDS - began)) s" >&2
[ "$binaries_rc" -eq 0 ] && [ "$images_rc" -eq 0 ]
