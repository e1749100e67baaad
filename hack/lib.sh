# Shared by hack/build-*.sh (sourced, not run): the cache folder, the build lock, the Go
# toolchain choice and the checksum-database probe. See hack/README.md.
#
# The sourcing script sets LOG_NAME first (the prefix of its progress lines), then calls:
#   cache_dir                      -> prints the cache root
#   take_lock DIR                  -> one build at a time per cache key (flock on DIR/.build.lock)
#   choose_toolchain GO_MOD        -> exports GOTOOLCHAIN (local, or FALLBACK_TOOLCHAIN)
#   check_sumdb GO_SUM             -> exports GOFLAGS (-mod=readonly) and, if the checksum
#                                     database can't be reached, GOSUMDB=off
#   on_exit CMD...                 -> run CMD at exit (temporary folders)

FALLBACK_TOOLCHAIN=go1.27.3
_ON_EXIT=()

log() { printf '[%s %s] %s\n' "${LOG_NAME:-build}" "$(date +%H:%M:%S)" "$*" >&2; }

_run_on_exit() {
  local cmd
  for cmd in "${_ON_EXIT[@]+"${_ON_EXIT[@]}"}"; do eval "${cmd}"; done
}
trap _run_on_exit EXIT

# on_exit 'rm -rf "/some/dir"': commands (strings, eval'ed) run when the script exits.
on_exit() { _ON_EXIT+=("$*"); }

cache_dir() {
  printf '%s\n' "${MODELFS_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/modelfs}"
}

require_go() {
  command -v go >/dev/null && return 0
  log "error: no 'go' on PATH; install Go >= 1.21 (the build fetches the toolchain it needs)${1:+ ($1)}"
  exit 1
}

# take_lock DIR: wait for the build lock of one cache key. Returns 1 when flock is missing
# (the build goes on unlocked), 0 once the lock is held; the caller re-checks for the result.
take_lock() {
  local dir="$1"
  mkdir -p "${dir}"
  exec 9>"${dir}/.build.lock"
  command -v flock >/dev/null || return 1
  log "waiting for the build lock ${dir}/.build.lock"
  flock 9
}

# choose_toolchain GO_MOD: the go line of the (wrapper) module says which Go it needs; an older
# local Go gets GOTOOLCHAIN=FALLBACK_TOOLCHAIN, fetched through the module proxy.
choose_toolchain() {
  local required local_go
  required="$(awk '$1 == "go" {print $2; exit}' "$1")"
  local_go="$(GOTOOLCHAIN=local go env GOVERSION)"
  local_go="${local_go#go}"
  if [[ "$(printf '%s\n%s\n' "${required}" "${local_go}" | sort -V | head -n1)" != "${required}" ]]; then
    export GOTOOLCHAIN="${FALLBACK_TOOLCHAIN}"
    log "local Go ${local_go} is older than the go ${required} the module needs: GOTOOLCHAIN=${GOTOOLCHAIN} (fetched through the module proxy)"
  else
    export GOTOOLCHAIN=local
    log "Go ${local_go} (the module needs ${required})"
  fi
}

# check_sumdb GO_SUM: the committed go.sum pins every module hash, so the build needs the
# checksum database only for hashes go.sum lacks. Probe it anyway (one small download into a
# scratch module cache, bounded by 60 s) and, if it can't be reached, turn it off explicitly:
# every download is still checked against the committed go.sum (the trust anchor), and
# -mod=readonly makes a missing hash an error, never a new entry.
check_sumdb() {
  local go_sum="$1" sumdb probe probe_mod
  export GOFLAGS="-mod=readonly -buildvcs=false"
  sumdb="$(go env GOSUMDB)"
  [[ "${sumdb}" == "off" ]] && return 0
  probe="$(mktemp -d)"
  on_exit "chmod -R u+w '${probe}' 2>/dev/null; rm -rf '${probe}'"
  probe_mod="$(awk 'NR==1 {print $1 "@" $2; exit}' "${go_sum}" | sed 's#/go.mod$##')"
  if ( cd "${probe}" && printf 'module probe\n' > go.mod &&
      GOFLAGS=-mod=mod GONOSUMDB= GONOSUMCHECK= GOPRIVATE= GOMODCACHE="${probe}/mod" \
        timeout 60 go mod download "${probe_mod}" ) >"${probe}/log" 2>&1; then
    log "checksum database ${sumdb%% *} reachable"
  else
    export GOSUMDB=off
    log "checksum database ${sumdb%% *} NOT reachable ($(tail -n1 "${probe}/log"));"
    log "  falling back to GOSUMDB=off with the committed go.sum as the trust anchor"
  fi
}
