#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and etcd from Go modules into a cache outside
# the repo, keyed by version:
#   ${MODELFS_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/modelfs}/k8s-<ver>-etcd-<ver>/bin
# Does nothing when the binaries are already there, or when $KUBEBUILDER_ASSETS names a folder
# holding all three (setup-envtest users). Prints the bin folder on its last line.
# See hack/README.md.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_NAME=build-control-plane
# shellcheck source=lib.sh
source "${HACK}/lib.sh"
# shellcheck source=versions.env
source "${HACK}/versions.env"
BINARIES=(kube-apiserver kube-controller-manager etcd)

have_all() {
  local dir="$1" b
  for b in "${BINARIES[@]}"; do [[ -x "${dir}/${b}" ]] || return 1; done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if have_all "${KUBEBUILDER_ASSETS}"; then
    log "using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS}; nothing to build"
    echo "${KUBEBUILDER_ASSETS}"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} lacks one of ${BINARIES[*]}; building our own"
fi

CACHE_DIR="$(cache_dir)"
KEY="k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
BIN_DIR="${CACHE_DIR}/${KEY}/bin"

if have_all "${BIN_DIR}"; then
  log "up to date: ${BIN_DIR}"
  echo "${BIN_DIR}"
  exit 0
fi

require_go "or set KUBEBUILDER_ASSETS"
# One build at a time per cache key (make and the pytest plugin may race).
if take_lock "${CACHE_DIR}/${KEY}" && have_all "${BIN_DIR}"; then
  log "built by another process: ${BIN_DIR}"
  echo "${BIN_DIR}"
  exit 0
fi

# The wrapper modules say which Go they need (the go line of go.mod); the committed go.sum
# files are the trust anchor of the downloads.
choose_toolchain "${HACK}/kube/go.mod"
check_sumdb "${HACK}/etcd/go.sum"

# --- Build into a temporary folder next to the cache, then move into place atomically.
tmp="$(mktemp -d "${CACHE_DIR}/${KEY}/.build.XXXXXX")"
on_exit "rm -rf '${tmp}'"
export CGO_ENABLED=0
start=${SECONDS}

k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${k8s_minor}"
  kube_ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
done

log "building kube-apiserver and kube-controller-manager ${K8S_VERSION} (cold: ~12 min and ~2.6 GB peak on 2 cores; warm Go cache: ~1-2 min)"
( cd "${HACK}/kube" && go build -trimpath -ldflags "${kube_ldflags}" -o "${tmp}/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager )
log "kube binaries done after $((SECONDS - start)) s"

log "building etcd ${ETCD_VERSION}"
( cd "${HACK}/etcd" && go build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" \
    -o "${tmp}/etcd" go.etcd.io/etcd/server/v3 )
log "etcd done after $((SECONDS - start)) s"

"${tmp}/kube-apiserver" --version >&2
"${tmp}/etcd" --version | sed -n 1p >&2  # not head: an early close is a SIGPIPE, fatal with pipefail

mkdir -p "${BIN_DIR}"
for b in "${BINARIES[@]}"; do mv -f "${tmp}/${b}" "${BIN_DIR}/${b}"; done
log "built into ${BIN_DIR} in $((SECONDS - start)) s"
echo "${BIN_DIR}"
