#!/usr/bin/env bash
# Build the BaizeAI/dataset controller (github.com/BaizeAI/dataset/cmd at DATASET_VERSION of
# hack/versions.env) from the Go module proxy, through the wrapper module hack/dataset, into a
# cache outside the repo, keyed by version, with the Dataset CRD of the same module version:
#   ${MODELFS_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/modelfs}/dataset-<ver>/
#       bin/dataset-controller
#       crd/dataset.baizeai.io_datasets.yaml     (config/crd/bases of the module)
# Does nothing when both are already there. Prints that folder on its last line.
# See hack/README.md.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_NAME=build-dataset-controller
# shellcheck source=lib.sh
source "${HACK}/lib.sh"
# shellcheck source=versions.env
source "${HACK}/versions.env"
MODULE=github.com/BaizeAI/dataset
CRD=dataset.baizeai.io_datasets.yaml
WRAPPER="${HACK}/dataset"

CACHE_DIR="$(cache_dir)"
KEY_DIR="${CACHE_DIR}/dataset-${DATASET_VERSION}"

have_all() { [[ -x "${KEY_DIR}/bin/dataset-controller" && -f "${KEY_DIR}/crd/${CRD}" ]]; }

if have_all; then
  log "up to date: ${KEY_DIR}"
  echo "${KEY_DIR}"
  exit 0
fi

required_version="$(awk -v m="${MODULE}" '{for (i = 1; i < NF; i++) if ($i == m) {print $(i + 1); exit}}' "${WRAPPER}/go.mod")"
if [[ "${required_version}" != "${DATASET_VERSION}" ]]; then
  log "error: hack/dataset/go.mod requires ${MODULE} ${required_version:-(nothing)}, hack/versions.env says ${DATASET_VERSION};"
  log "  run: (cd hack/dataset && go get ${MODULE}@${DATASET_VERSION} && go mod tidy)"
  exit 1
fi

require_go
if take_lock "${KEY_DIR}" && have_all; then
  log "built by another process: ${KEY_DIR}"
  echo "${KEY_DIR}"
  exit 0
fi

choose_toolchain "${WRAPPER}/go.mod"
check_sumdb "${WRAPPER}/go.sum"

# Build into a temporary folder next to the result, then move into place (an interrupted
# build leaves nothing half-done).
tmp="$(mktemp -d "${KEY_DIR}/.build.XXXXXX")"
on_exit "rm -rf '${tmp}'"
export CGO_ENABLED=0
start=${SECONDS}

log "building ${MODULE}/cmd ${DATASET_VERSION} (cold: ~5 min on 2 cores; warm Go cache: seconds)"
( cd "${WRAPPER}" && go build -trimpath -ldflags "-s -w" -o "${tmp}/dataset-controller" "${MODULE}/cmd" )
log "dataset-controller done after $((SECONDS - start)) s"

module_dir="$(cd "${WRAPPER}" && go list -m -f '{{.Dir}}' "${MODULE}")"
mkdir -p "${tmp}/crd"
cp "${module_dir}/config/crd/bases/${CRD}" "${tmp}/crd/${CRD}"
chmod u+w "${tmp}/crd/${CRD}"
log "Dataset CRD from ${module_dir}/config/crd/bases/${CRD}"

mkdir -p "${KEY_DIR}/bin" "${KEY_DIR}/crd"
mv -f "${tmp}/crd/${CRD}" "${KEY_DIR}/crd/${CRD}"
mv -f "${tmp}/dataset-controller" "${KEY_DIR}/bin/dataset-controller"
log "built into ${KEY_DIR} in $((SECONDS - start)) s"
echo "${KEY_DIR}"
