# shellcheck shell=bash
# shim.sh holds what the stand-in's bin/ wrappers share; they source it.
#
# The docker stub puts bin/ first in PATH of every container process and sets
# STANDIN_DIR (this package) and STANDIN_PYTHON (the Python that has Ray).
# Wrappers only replace programs of the engine images (vllm, ray, ...): they
# exec the stand-in engine or the real Ray, so their pid stays the
# container's process, as `exec` in llmfab's payloads expects.

STANDIN_DIR=${STANDIN_DIR:-$(cd "${BASH_SOURCE[0]%/*}" && pwd)}

# real_python3 prints the first python3 in PATH that is not our own wrapper.
real_python3() {
  local dir
  local -a dirs
  IFS=: read -r -a dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [[ $dir != "$STANDIN_DIR/bin" && -x $dir/python3 ]] || continue
    printf '%s' "$dir/python3"
    return 0
  done
  printf 'python3'
}

[[ -n ${STANDIN_PYTHON-} ]] || STANDIN_PYTHON=$(real_python3)

# standin execs the stand-in engine: standin MODE ARGS... The package's parent
# goes last on sys.path, so nothing there can shadow an installed module.
standin() {
  exec "$STANDIN_PYTHON" -u -c '
import runpy, sys
sys.path = [p for p in sys.path if p] + [sys.argv.pop(1)]
runpy.run_module("standin", run_name="__main__", alter_sys=True)
' "${STANDIN_DIR%/*}" "$@"
}

# shim_unsupported names what a wrapper does not simulate, then exits 2.
shim_unsupported() {
  printf '%s (llmfab stand-in): unsupported arguments: %s\n' "$1" "${*:2}" >&2
  exit 2
}
