# --- llmfab step library -------------------------------------------------------
# Shared by every generated script, over SSH and in bundles alike. A step is a
# function that probes first and changes only what differs; it reports through
# llmfab_ok / llmfab_do / llmfab_skip and the driver turns that into one record
# line per step on stdout:
#   @@llmfab<TAB>result<TAB>STEP<TAB>STATUS<TAB>MESSAGE<TAB>BASE64(last output lines)
# STATUS is ok, changed, failed or skipped. Nothing here writes outside the
# paths a step names, and no file is ever appended to.

LLMFAB_DRY_RUN=${LLMFAB_DRY_RUN:-0}
LLMFAB_TAIL_LINES=${LLMFAB_TAIL_LINES:-20}

# llmfab_ok records why a step (or part of it) had nothing to do.
llmfab_ok() {
  printf '%s\n' "$*" >>"$LLMFAB_STEP_DIR/ok"
}

# llmfab_skip marks the step as not applicable on this node, with the reason.
llmfab_skip() {
  printf '%s\n' "$*" >>"$LLMFAB_STEP_DIR/skip"
}

# llmfab_fail stops the step with a reason a person can act on.
llmfab_fail() {
  printf '%s\n' "$*" >"$LLMFAB_STEP_DIR/reason"
  printf 'error: %s\n' "$*" >&2
  return 1
}

# llmfab_do runs one change (a command and its arguments) and records what it did;
# in dry-run mode it records only what it would do.
llmfab_do() {
  local what=$1
  shift
  if [[ $LLMFAB_DRY_RUN == 1 ]]; then
    printf 'would %s\n' "$what" >>"$LLMFAB_STEP_DIR/changes"
    return 0
  fi
  printf '+ %s\n' "$what"
  "$@"
  printf '%s\n' "$what" >>"$LLMFAB_STEP_DIR/changes"
}

# llmfab_changed reports whether the current step has changed anything so far.
llmfab_changed() {
  [[ -s $LLMFAB_STEP_DIR/changes ]]
}

# llmfab__install writes SRC to PATH atomically with MODE, keeping a backup of a
# differing PATH. The temporary file sits beside PATH (rename is atomic only
# within one file system) under a name no *.conf glob matches.
llmfab__install() {
  local src=$1 path=$2 mode=$3 dir base tmp
  dir=$(dirname -- "$path")
  base=$(basename -- "$path")
  mkdir -p -- "$dir"
  rm -f -- "$dir/.$base".llmfab-tmp.*
  if [[ -e $path ]]; then
    cp -p -- "$path" "$path.llmfab-backup.$(date +%Y%m%d-%H%M%S)"
  fi
  tmp=$(mktemp -- "$dir/.$base.llmfab-tmp.XXXXXX")
  cat -- "$src" >"$tmp"
  chmod -- "$mode" "$tmp"
  sync -- "$tmp" 2>/dev/null || true
  mv -f -- "$tmp" "$path"
}

# llmfab_file makes PATH hold exactly what stdin holds, with MODE.
llmfab_file() {
  local path=$1 mode=$2 want
  want="$LLMFAB_STEP_DIR/want.$RANDOM"
  cat >"$want"
  if [[ -f $path ]] && cmp -s -- "$want" "$path" && [[ $(stat -c %a -- "$path") == "${mode#0}" ]]; then
    llmfab_ok "$path is up to date"
    return 0
  fi
  if [[ -e $path ]]; then
    llmfab_do "update $path (backup kept)" llmfab__install "$want" "$path" "$mode"
  else
    llmfab_do "create $path" llmfab__install "$want" "$path" "$mode"
  fi
}

# llmfab_have tells whether a command exists on this node.
llmfab_have() {
  command -v "$1" >/dev/null 2>&1
}

# llmfab__record prints one result line for the runner (or run.sh) to read.
llmfab__record() {
  local step=$1 status=$2 message=$3 tail_b64=${4:-}
  message=${message//$'\t'/ }
  message=${message//$'\n'/; }
  printf '@@llmfab\tresult\t%s\t%s\t%s\t%s\n' "$step" "$status" "$message" "$tail_b64"
}

# llmfab__join joins the lines of FILE with "; ".
llmfab__join() {
  paste -sd';' -- "$1" | sed 's/;/; /g'
}

# llmfab__run_step runs one step function in a subshell with its output captured,
# prints its record and leaves the step's exit status in LLMFAB_STEP_RC. It must
# not be called as a condition (`if`, `||`): bash would then ignore `set -e`
# inside the step.
llmfab__run_step() {
  local step=$1 fn=$2 rc=0 status message tail_b64=""
  LLMFAB_STEP_DIR="$LLMFAB_WORK/$step"
  mkdir -p "$LLMFAB_STEP_DIR"
  printf '@@llmfab\tstart\t%s\n' "$step"
  set +e
  (
    set -Eeuo pipefail
    trap 'printf "command failed (exit %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >>"$LLMFAB_STEP_DIR/errtrap"' ERR
    "$fn"
  ) >"$LLMFAB_STEP_DIR/log" 2>&1
  rc=$?
  set -e
  if [[ -n ${LLMFAB_LOG:-} ]]; then
    sed "s/^/[$step] /" "$LLMFAB_STEP_DIR/log" >>"$LLMFAB_LOG" || true
  fi
  if ((rc != 0)); then
    status=failed
    if [[ -s $LLMFAB_STEP_DIR/reason ]]; then
      message=$(cat "$LLMFAB_STEP_DIR/reason")
    elif [[ -s $LLMFAB_STEP_DIR/errtrap ]]; then
      message=$(head -n 1 "$LLMFAB_STEP_DIR/errtrap")
    else
      message="exit status $rc"
    fi
    tail_b64=$(tail -n "$LLMFAB_TAIL_LINES" "$LLMFAB_STEP_DIR/log" | base64 -w0)
  elif [[ -s $LLMFAB_STEP_DIR/skip ]]; then
    status=skipped
    message=$(llmfab__join "$LLMFAB_STEP_DIR/skip")
  elif [[ -s $LLMFAB_STEP_DIR/changes ]]; then
    status=changed
    message=$(llmfab__join "$LLMFAB_STEP_DIR/changes")
  else
    status=ok
    message=$(llmfab__join "$LLMFAB_STEP_DIR/ok" 2>/dev/null || true)
  fi
  llmfab__record "$step" "$status" "${message:-nothing to do}" "$tail_b64"
  LLMFAB_STEP_RC=$rc
}

# llmfab_run_steps runs the named steps in order; after a failure the rest are
# skipped, since later steps build on earlier ones.
llmfab_run_steps() {
  local failed="" step
  LLMFAB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmfab.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the path is fixed for this run
  trap "rm -rf -- '$LLMFAB_WORK'" EXIT
  for step in "$@"; do
    if [[ -n $failed ]]; then
      llmfab__record "$step" skipped "not run: step $failed failed"
      continue
    fi
    llmfab__run_step "$step" "step_${step//-/_}"
    if ((LLMFAB_STEP_RC != 0)); then
      failed=$step
    fi
  done
  [[ -z $failed ]]
}

# llmfab_main parses the common options of a generated script and runs the steps
# listed in LLMFAB_STEPS.
llmfab_main() {
  local arg
  for arg in "$@"; do
    case $arg in
      --dry-run) LLMFAB_DRY_RUN=1 ;;
      *)
        printf 'unknown option: %s (known: --dry-run)\n' "$arg" >&2
        return 2
        ;;
    esac
  done
  exec </dev/null
  llmfab_run_steps "${LLMFAB_STEPS[@]}"
}
# --- end of llmfab step library ------------------------------------------------
