# shellcheck shell=bash
# lib.sh holds what every llmfab test-host stub shares; stubs source it.
#
# A stub shadows a real program inside one test host only. It logs each call
# so tests can assert what llmfab ran, and keeps its simulated state as plain
# files under STUB_STATE so tests can set the scene with host.set_state().
# Stubs run with `set -Euo pipefail` but without -e: their exit statuses are
# the simulated program's answers, so every status is handled explicitly.

STUB_STATE=${LLMFAB_STUB_STATE:-/var/lib/llmfab-stubs}
STUB_LOG=${LLMFAB_STUB_LOG:-/var/log/llmfab-stubs/calls.log}
# Fixture texts copied into the host at provisioning (source headers stripped).
STUB_DATA=${LLMFAB_STUB_DATA:-/usr/share/llmfab-stubs}

# stub_log appends "<program><TAB><args, each quoted with printf %q>" to the log.
stub_log() {
  local program=$1 quoted="" arg one
  shift
  for arg in "$@"; do
    printf -v one '%q' "$arg"
    quoted+="${quoted:+ }$one"
  done
  mkdir -p "${STUB_LOG%/*}"
  # One short write per line: concurrent stubs cannot interleave inside it.
  printf '%s\t%s\n' "$program" "$quoted" >>"$STUB_LOG"
}

# stub_get prints state file $1 without its trailing newline, or default $2.
stub_get() {
  local file="$STUB_STATE/$1"
  if [[ -f $file ]]; then
    printf '%s' "$(<"$file")"
  else
    printf '%s' "${2-}"
  fi
}

# stub_has succeeds when state file $1 exists.
stub_has() {
  [[ -e "$STUB_STATE/$1" ]]
}

# stub_set writes value $2 (plus a newline) to state file $1.
stub_set() {
  mkdir -p "$(dirname "$STUB_STATE/$1")"
  printf '%s\n' "$2" >"$STUB_STATE/$1"
}

# stub_count adds one to the counter in state file $1.
stub_count() {
  local now
  now=$(stub_get "$1" 0)
  stub_set "$1" "$((now + 1))"
}

# stub_fixture prints a fixture text shipped with the stubs.
stub_fixture() {
  cat -- "$STUB_DATA/$1"
}

# stub_unsupported names arguments this stub does not simulate, then exits 2,
# so a test fails loudly instead of passing on a silent no-op.
stub_unsupported() {
  printf '%s (llmfab test stub): unsupported arguments: %s\n' "$1" "${*:2}" >&2
  exit 2
}
