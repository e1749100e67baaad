#!/bin/sh
# Build modelfs's wheel from SRC and install it, with its dependencies, into a new virtualenv DEST
# that has no pip, compiler or build tool in it; then check that `modelfs run --help` works there.
# The bare wheel: the operator only, no test harness (that is modelfs[testing], another wheel).
# The Dockerfile runs exactly this, and so does tests/test_packaging.py: what the test proves is
# what the image gets.
set -eu
src=${1:?usage: build-venv.sh SRC DEST [PYTHON]}
dest=${2:?usage: build-venv.sh SRC DEST [PYTHON]}
python=${3:-python3}
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
"$python" -m pip wheel --no-cache-dir --no-deps --wheel-dir "$dist" "$src"
"$python" -m venv --without-pip "$dest"
"$python" -m pip --python "$dest/bin/python" install --no-cache-dir "$dist"/modelfs-*.whl
"$dest/bin/modelfs" run --help >/dev/null
echo "modelfs installed into $dest"
