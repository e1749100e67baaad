#!/usr/bin/env bash
# Build helm (helm.sh/helm/v3/cmd/helm at HELM_VERSION of hack/versions.env) from the Go module
# proxy, through the wrapper module hack/helm, into the tools cache, keyed by version:
#   ${MODELFS_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/modelfs}/tools/helm-<ver>/helm
# Does nothing when it is already there. Prints the binary's path on its last line.
# The chart tests (tests/test_chart.py, e2e/test_helm.py) and the release workflow use it.
# See hack/README.md.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_NAME=build-helm
# shellcheck source=lib.sh
source "${HACK}/lib.sh"
# shellcheck source=versions.env
source "${HACK}/versions.env"
MODULE=helm.sh/helm/v3
WRAPPER="${HACK}/helm"

KEY_DIR="$(cache_dir)/tools/helm-${HELM_VERSION}"
BINARY="${KEY_DIR}/helm"

if [[ -x "${BINARY}" ]]; then
  log "up to date: ${BINARY}"
  echo "${BINARY}"
  exit 0
fi

required_version="$(awk -v m="${MODULE}" '{for (i = 1; i < NF; i++) if ($i == m) {print $(i + 1); exit}}' "${WRAPPER}/go.mod")"
if [[ "${required_version}" != "${HELM_VERSION}" ]]; then
  log "error: hack/helm/go.mod requires ${MODULE} ${required_version:-(nothing)}, hack/versions.env says ${HELM_VERSION};"
  log "  run: (cd hack/helm && go get ${MODULE}@${HELM_VERSION} && go mod tidy)"
  exit 1
fi

require_go
if take_lock "${KEY_DIR}" && [[ -x "${BINARY}" ]]; then
  log "built by another process: ${BINARY}"
  echo "${BINARY}"
  exit 0
fi

choose_toolchain "${WRAPPER}/go.mod"
check_sumdb "${WRAPPER}/go.sum"

tmp="$(mktemp -d "${KEY_DIR}/.build.XXXXXX")"
on_exit "rm -rf '${tmp}'"
export CGO_ENABLED=0
start=${SECONDS}

# The ldflags helm's own Makefile sets: its version, and the Kubernetes version that
# `helm template` and `helm lint` assume (.Capabilities.KubeVersion) from its client-go.
client_go="$(cd "${WRAPPER}" && go list -m -f '{{.Version}}' k8s.io/client-go)"   # v0.37.0
k8s_minor="$(cut -d. -f2 <<<"${client_go}")"
ldflags="-s -w -X ${MODULE}/internal/version.version=${HELM_VERSION}"
ldflags+=" -X ${MODULE}/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X ${MODULE}/${pkg}.k8sVersionMajor=1 -X ${MODULE}/${pkg}.k8sVersionMinor=${k8s_minor}"
done

log "building ${MODULE}/cmd/helm ${HELM_VERSION} (cold: a few minutes on 2 cores; warm Go cache: seconds)"
( cd "${WRAPPER}" && go build -trimpath -ldflags "${ldflags}" -o "${tmp}/helm" "${MODULE}/cmd/helm" )
"${tmp}/helm" version --short >&2
mv -f "${tmp}/helm" "${BINARY}"
log "built ${BINARY} in $((SECONDS - start)) s"
echo "${BINARY}"
