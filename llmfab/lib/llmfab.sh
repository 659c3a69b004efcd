# --- llmfab step library -------------------------------------------------------
# Shared by every generated script, over SSH and in bundles alike. A step is a
# function that probes first and changes only what differs; it reports through
# llmfab_ok / llmfab_do / llmfab_skip and the driver turns that into one record
# line per step on stdout:
#   @@llmfab<TAB>result<TAB>STEP<TAB>STATUS<TAB>MESSAGE<TAB>BASE64(last output lines)
# STATUS is ok, changed, failed or skipped. Nothing here writes outside the
# paths a step names, and no file is ever appended to.

LLMFAB_DRY_RUN=${LLMFAB_DRY_RUN:-0}
LLMFAB_GROUPS=()
LLMFAB_DIFF=${LLMFAB_DIFF:-0}
LLMFAB_OUTPUT=${LLMFAB_OUTPUT:-0}
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
  # Fd 3 is the record channel and fd 7 the run lock: a daemon or container
  # started here must hold neither open.
  "$@" 3>&- 7>&-
  printf '%s\n' "$what" >>"$LLMFAB_STEP_DIR/changes"
}

# llmfab_changed reports whether the current step has changed anything so far.
llmfab_changed() {
  [[ -s $LLMFAB_STEP_DIR/changes ]]
}

LLMFAB_BACKUP_DIR=${LLMFAB_BACKUP_DIR:-/var/backups/llmfab}

# llmfab_backup copies PATH (if it exists) to LLMFAB_BACKUP_DIR/PATH.TIMESTAMP.PID:
# never beside it, where apt (sources.list.d) or sysctl (sysctl.d) would read it.
# The copy is made in a fresh private directory and renamed into place, so a
# link planted at the backup's name is replaced, never written through; a
# backup directory that a user other than root can write is refused.
llmfab_backup() {
  local path=$1 copy dir tmp
  [[ -e $path || -L $path ]] || return 0
  copy="$LLMFAB_BACKUP_DIR$path.$(date +%Y%m%d-%H%M%S).$$"
  if [[ ! -d $LLMFAB_BACKUP_DIR ]]; then
    mkdir -p -- "$LLMFAB_BACKUP_DIR"
    chmod 0700 -- "$LLMFAB_BACKUP_DIR"
  fi
  if ! llmfab__root_only_dir "$LLMFAB_BACKUP_DIR"; then
    printf 'error: %s can be written by a user other than root: no backup is kept there\n' "$LLMFAB_BACKUP_DIR" >&2
    return 1
  fi
  dir=$(dirname -- "$copy")
  mkdir -p -- "$dir"
  tmp=$(mktemp -d -- "$dir/.llmfab-tmp.XXXXXX")
  cp -P --preserve=mode,timestamps -- "$path" "$tmp/copy"
  mv -fT -- "$tmp/copy" "$copy"
  rmdir -- "$tmp"
}

# llmfab__install writes SRC to PATH atomically with MODE, keeping a backup of a
# differing PATH (see llmfab_backup). The temporary file sits beside PATH (rename
# is atomic only within one file system) under a name no *.conf glob matches.
llmfab__install() {
  local src=$1 path=$2 mode=$3 dir base tmp
  dir=$(dirname -- "$path")
  base=$(basename -- "$path")
  mkdir -p -- "$dir"
  rm -f -- "$dir/.$base".llmfab-tmp.*
  llmfab_backup "$path"
  tmp=$(mktemp -- "$dir/.$base.llmfab-tmp.XXXXXX")
  cat -- "$src" >"$tmp"
  chmod -- "$mode" "$tmp"
  sync -- "$tmp" 2>/dev/null || true
  mv -f -- "$tmp" "$path"
}

# llmfab_file makes PATH hold exactly what stdin holds, with MODE. The comparison
# uses bash builtins only: on a no-op run this is most of what a step costs.
llmfab_file() {
  local path=$1 mode=$2 want content="" current="" dir
  IFS= read -r -d '' content || true
  dir=$(dirname -- "$path")
  if [[ -d $dir ]] && ! llmfab__root_only_dir "$dir"; then
    llmfab_fail "$dir can be written by a user other than root: llmfab manages files only in root-owned directories (a planted link there would turn its writes against root)"
    return 1
  fi
  if [[ -f $path ]]; then
    IFS= read -r -d '' current <"$path" || true
    if [[ $current == "$content" && $(stat -c %a -- "$path") == "${mode#0}" ]]; then
      llmfab_ok "$path is up to date"
      return 0
    fi
  fi
  want="$LLMFAB_STEP_DIR/want.$RANDOM"
  printf '%s' "$content" >"$want"
  if [[ $LLMFAB_DIFF == 1 ]]; then
    llmfab_diff "$path" "$want" "$mode"
  fi
  if [[ -e $path ]]; then
    llmfab_do "update $path (backup kept)" llmfab__install "$want" "$path" "$mode"
  else
    llmfab_do "create $path" llmfab__install "$want" "$path" "$mode"
  fi
}

# llmfab__root_only_dir succeeds when DIR is owned by root and neither group nor
# others may write to it.
llmfab__root_only_dir() {
  local owner mode
  read -r owner mode < <(stat -L -c '%u %a' -- "$1")
  [[ $owner == 0 ]] && (((8#$mode & 8#022) == 0))
}

# llmfab_diff reports how PATH would change into the content of WANT (a unified
# diff, as a record), unless MODE hides the file from other users: such a file
# may hold a secret, and its diff would put it in logs.
llmfab_diff() {
  local path=$1 want=$2 mode=$3 old=$1 text
  if (((8#${mode#0} & 8#004) == 0)); then
    llmfab_emit diff "$path" "$(printf 'diff not shown: %s is mode %s (may hold a secret)\n' "$path" "$mode" | base64 -w0)"
    return 0
  fi
  [[ -e $path ]] || old=/dev/null
  text=$(diff -u --label "$path" --label "$path (new)" -- "$old" "$want" || true)
  llmfab_emit diff "$path" "$(printf '%s\n' "$text" | base64 -w0)"
}

# llmfab_emit sends one extra record (progress, log, fact, check) straight to the
# runner, past the step's captured output: fd 3 is the driver's stdout.
llmfab_emit() {
  local kind=$1 field out=""
  shift
  for field in "$@"; do
    field=${field//$'\t'/ }
    out+=$'\t'"${field//$'\n'/; }"
  done
  printf '@@llmfab\t%s\t%s%s\n' "$kind" "${LLMFAB_STEP:-}" "$out" >&3
}

# llmfab_progress reports how a long wait is going.
llmfab_progress() {
  llmfab_emit progress "$*"
}

# llmfab_emit_file sends the last lines of FILE to the runner under NAME, with
# the endpoint's API key blanked out.
llmfab_emit_file() {
  local name=$1 file=$2 lines=${3:-80}
  [[ -f $file ]] || return 0
  llmfab_emit log "$name" "$(llmfab_tail "$file" "$lines" | base64 -w0)"
}

# llmfab_tail prints the last LINES lines of a regular FILE without following a
# link (a container may plant one among its logs), the API key blanked out.
llmfab_tail() {
  [[ -f $1 && ! -L $1 ]] || return 0
  timeout 20 dd if="$1" iflag=nofollow status=none 2>/dev/null | tail -n "$2" | llmfab_redact || true
}

# llmfab_redact copies stdin to stdout with the endpoint's API key (if this node
# keeps one) replaced by ***: engines echo their arguments in their logs.
llmfab_redact() {
  local key="" line
  # The generated key has no final newline: read then fails, having read it.
  if [[ -s /etc/llmfab/api_key ]]; then
    IFS= read -r key </etc/llmfab/api_key || true
  fi
  if [[ -z $key ]]; then
    cat
    return 0
  fi
  while IFS= read -r line || [[ -n $line ]]; do
    printf '%s\n' "${line//"$key"/***}"
  done
}

# llmfab_wait_until runs a probe command every INTERVAL seconds until it
# succeeds or TIMEOUT seconds pass, reporting progress with WHAT.
llmfab_wait_until() {
  local timeout=$1 interval=$2 what=$3 start now next_report
  shift 3
  start=$SECONDS
  next_report=$((start + 15))
  until "$@"; do
    now=$SECONDS
    if ((now - start >= timeout)); then
      return 1
    fi
    if ((now >= next_report)); then
      llmfab_progress "waiting for $what ($((now - start))s of ${timeout}s)"
      next_report=$((now + 15))
    fi
    sleep "$interval"
  done
}

# llmfab_port_open tells whether HOST:PORT accepts a TCP connection (bash's /dev/tcp).
llmfab_port_open() {
  timeout 3 bash -c 'exec 9<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# llmfab_running tells whether container NAME exists and is running.
llmfab_running() {
  [[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]
}

# llmfab_image makes IMAGE present: loaded from the bundle's images/ARCHIVE when
# offline, else pulled; never fetched again once `docker image inspect` finds it.
llmfab_image() {
  local image=$1 archive=$2
  llmfab_have docker || llmfab_fail "docker is not installed: run prep first"
  if docker image inspect "$image" >/dev/null 2>&1; then
    llmfab_ok "image $image is present"
    return 0
  fi
  if [[ -n ${LLMFAB_ARTIFACTS:-} ]]; then
    [[ -f $LLMFAB_ARTIFACTS/images/$archive ]] \
      || llmfab_fail "image $image is not on this node and images/$archive is not in the bundle"
    llmfab_do "load $image from the bundle" docker load -i "$LLMFAB_ARTIFACTS/images/$archive"
  else
    llmfab_do "pull $image" docker pull "$image"
  fi
}

# llmfab_container_current tells whether container NAME is running and its label
# LABEL holds FINGERPRINT: the deployment asked for is the one in place.
llmfab_container_current() {
  local name=$1 label=$2 fingerprint=$3 have
  llmfab_running "$name" || return 1
  have=$(docker inspect -f "{{index .Config.Labels \"$label\"}}" "$name" 2>/dev/null || true)
  [[ $have == "$fingerprint" ]]
}

# llmfab_remove_containers removes every container carrying label LABEL (the
# ones a new deployment replaces), saying WHAT in the record; none: no change.
llmfab_remove_containers() {
  local label=$1 what=$2 stale
  stale=$(docker ps -aq --filter "label=$label" | paste -sd' ')
  [[ -n $stale ]] || return 0
  # shellcheck disable=SC2086 # one container ID per word
  llmfab_do "$what" docker rm -f $stale
}

# llmfab_have tells whether a command exists on this node.
llmfab_have() {
  command -v "$1" >/dev/null 2>&1
}

# llmfab_reboot records that the node must reboot before this step can finish.
llmfab_reboot() {
  printf '%s\n' "$*" >>"$LLMFAB_STEP_DIR/reboot"
  if [[ $LLMFAB_DRY_RUN != 1 ]]; then
    mkdir -p /var/run && printf '*** System restart required (llmfab) ***\n' >/var/run/reboot-required
  fi
}

# llmfab_os sets OS_ID, OS_VERSION, OS_CODENAME and OS_REPO from /etc/os-release.
# shellcheck disable=SC2034 # read by the steps that call it
llmfab_os() {
  local line
  OS_ID=unknown OS_VERSION=unknown OS_CODENAME=unknown
  while IFS= read -r line; do
    line=${line//\"/}
    case $line in
      ID=*) OS_ID=${line#ID=} ;;
      VERSION_ID=*) OS_VERSION=${line#VERSION_ID=} ;;
      VERSION_CODENAME=*) OS_CODENAME=${line#VERSION_CODENAME=} ;;
    esac
  done </etc/os-release
  # NVIDIA names its repositories ubuntu2204, ubuntu2404, debian12.
  OS_REPO="$OS_ID${OS_VERSION//./}"
}

# llmfab_driver_version prints the loaded NVIDIA driver's version, or nothing.
# nvidia-smi prints its failures ("couldn't communicate with the NVIDIA driver")
# on stdout, so only a successful run that printed a version counts.
llmfab_driver_version() {
  local out
  out=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null) || return 0
  out=$(head -n 1 <<<"$out" | tr -d '[:space:]')
  if [[ $out =~ ^[0-9]+(\.[0-9]+)+$ ]]; then
    printf '%s\n' "$out"
  fi
}

# llmfab_pkg_version prints the installed version of package $1, or nothing.
llmfab_pkg_version() {
  { dpkg-query -W -f='${db:Status-Abbrev}|${Version}\n' "$1" 2>/dev/null || true; } | awk -F'|' '$1 ~ /^.i/ {print $2}'
}

# llmfab_apt_install GROUP PKG[=VERSION]... installs what is missing or of another
# version: from the bundle's debs/GROUP/ when LLMFAB_ARTIFACTS is set, else from apt.
llmfab_apt_install() {
  local group=$1 spec name want have installed
  shift
  local -a missing=() names=()
  for spec in "$@"; do
    names+=("${spec%%=*}")
  done
  # One dpkg-query for all of them: "name version" of each installed package.
  installed=$({ dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Version}\n' "${names[@]}" 2>/dev/null || true; } \
    | awk -F'|' '$1 ~ /^.i/ {print $2 " " $3}')
  for spec in "$@"; do
    name=${spec%%=*}
    want=""
    [[ $spec == *=* ]] && want=${spec#*=}
    have=$(awk -v n="$name" '$1 == n {print $2}' <<<"$installed")
    if [[ -z $have || ( -n $want && $have != "$want" ) ]]; then
      missing+=("$spec")
    fi
  done
  if ((${#missing[@]} == 0)); then
    llmfab_ok "installed: $*"
    return 0
  fi
  if [[ -n ${LLMFAB_ARTIFACTS:-} ]]; then
    llmfab_do "install ${missing[*]} from the bundle" llmfab__apt_offline "$group"
  else
    llmfab_do "install ${missing[*]}" llmfab__apt_online "${missing[@]}"
  fi
}

# llmfab__apt_online installs packages from the configured apt repositories.
llmfab__apt_online() {
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# llmfab__apt_offline installs a bundle's package group (the .debs and their
# dependencies), leaving alone packages already installed at that version or newer.
llmfab__apt_offline() {
  local deb name version have
  local -a debs=()
  for deb in "$LLMFAB_ARTIFACTS/debs/$1"/*.deb; do
    [[ -e $deb ]] || llmfab_fail "the bundle has no packages in debs/$1/: re-export it after fab fetch-artifacts"
    name=$(dpkg-deb -f "$deb" Package)
    version=$(dpkg-deb -f "$deb" Version)
    have=$(llmfab_pkg_version "$name")
    if [[ -n $have ]] && dpkg --compare-versions "$have" ge "$version"; then
      continue
    fi
    debs+=("$deb")
  done
  ((${#debs[@]} > 0)) || return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-download \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${debs[@]}"
}

# llmfab_held lists the packages on hold. It reads dpkg's selections, as
# `apt-mark showhold` does, without loading apt's cache (half a second each time).
llmfab_held() {
  { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null || true; } | awk '$1 ~ /^h/ {print $2}'
}

# llmfab_hold holds packages with apt-mark so upgrades leave them alone.
llmfab_hold() {
  local held pkg
  local -a missing=()
  held=$(llmfab_held)
  for pkg in "$@"; do
    grep -qxF -- "$pkg" <<<"$held" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    llmfab_ok "held: $*"
    return 0
  fi
  llmfab_do "hold ${missing[*]}" llmfab__set_hold "${missing[@]}"
}

# llmfab__set_hold marks packages held in dpkg's selections: what `apt-mark hold`
# does, without its half second of loading apt's cache.
llmfab__set_hold() {
  printf '%s hold\n' "$@" | dpkg --set-selections
}

# llmfab_service makes a systemd unit enabled and active, and checks it stays up.
llmfab_service() {
  local unit=$1
  if ! systemctl is-enabled --quiet "$unit" 2>/dev/null; then
    llmfab_do "enable $unit" systemctl enable "$unit"
  fi
  if ! systemctl is-active --quiet "$unit" 2>/dev/null; then
    llmfab_do "start $unit" systemctl start "$unit"
    if [[ $LLMFAB_DRY_RUN != 1 ]] && ! systemctl is-active --quiet "$unit"; then
      systemctl status --no-pager "$unit" || true
      llmfab_fail "$unit did not stay active (see: journalctl -u $unit)"
    fi
  else
    llmfab_ok "$unit is active"
  fi
}

# llmfab_fetch prints the local path of artifact NAME: the bundle's copy when
# LLMFAB_ARTIFACTS is set, else a (resumable) download of URL into /var/cache/llmfab.
# A given SHA256 is checked either way. With RUN=1 (root will execute it) a
# download needs a SHA256: TLS alone does not pin what is run.
llmfab_fetch() {
  local url=$1 sha=$2 name=$3 run=${4:-0} path
  if [[ $run == 1 && -z $sha && -z ${LLMFAB_ARTIFACTS:-} && $url != file://* ]]; then
    llmfab_fail "refusing to run $name downloaded without a pinned sha256: set its installer_sha256 in the config (the checksum you verified), or use a bundle"
    return 1
  fi
  if [[ -n ${LLMFAB_ARTIFACTS:-} ]]; then
    path=$LLMFAB_ARTIFACTS/files/$name
    [[ -f $path ]] || llmfab_fail "artifact $name is missing from the bundle (files/$name)"
  else
    path=/var/cache/llmfab/$name
    mkdir -p /var/cache/llmfab
    if [[ ! -s $path ]]; then
      curl -fsSL --retry 3 --connect-timeout 20 -C - -o "$path.part" "$url" >&2 \
        || llmfab_fail "download of $url failed (network? mirror? an air-gapped site needs the bundle)"
      mv -f "$path.part" "$path"
    fi
  fi
  if [[ -n $sha ]] && ! printf '%s  %s\n' "$sha" "$path" | sha256sum -c --quiet - >&2; then
    llmfab_fail "checksum mismatch for $name (expected $sha)"
  fi
  printf '%s\n' "$path"
}

# llmfab_apt_repo NAME KEY_URL LINE keeps an apt repository with its own keyring
# (signed-by, not the deprecated apt-key) and refreshes apt only when it changed.
llmfab_apt_repo() {
  local name=$1 key_url=$2 line=$3 keyring list key
  keyring=/etc/apt/keyrings/$name.asc
  list=/etc/apt/sources.list.d/$name.list
  if [[ -n ${LLMFAB_ARTIFACTS:-} ]]; then
    llmfab_ok "offline: packages come from the bundle, no $name repository"
    return 0
  fi
  if [[ ! -s $keyring ]]; then
    if [[ $LLMFAB_DRY_RUN == 1 ]]; then
      llmfab_do "download the $name signing key to $keyring" true
    else
      key=$(llmfab_fetch "$key_url" "" "$name.asc")
      llmfab_file "$keyring" 0644 <"$key"
    fi
  fi
  printf '%s\n' "${line//@KEYRING@/$keyring}" | llmfab_file "$list" 0644
}

# llmfab__record prints one result line for the runner (or run.sh) to read.
llmfab__record() {
  local step=$1 status=$2 message=$3 tail_b64=${4:-}
  message=${message//$'\t'/ }
  message=${message//$'\n'/; }
  printf '@@llmfab\tresult\t%s\t%s\t%s\t%s\n' "$step" "$status" "$message" "$tail_b64"
}

# llmfab__join sets LLMFAB_JOINED to the lines of FILE joined with "; " (no
# subshell: this runs once per step, and a no-op run is mostly such overhead).
llmfab__join() {
  local -a joined_lines=()
  [[ -s $1 ]] && mapfile -t joined_lines <"$1"
  local IFS=$'\x1f'
  LLMFAB_JOINED="${joined_lines[*]}"
  LLMFAB_JOINED=${LLMFAB_JOINED//$'\x1f'/; }
}

# llmfab__run_step runs one step function in a subshell with its output captured,
# prints its record and leaves the step's exit status in LLMFAB_STEP_RC. It must
# not be called as a condition (`if`, `||`): bash would then ignore `set -e`
# inside the step.
llmfab__run_step() {
  local step=$1 fn=$2 rc=0 status message tail_b64=""
  LLMFAB_STEP_DIR="$LLMFAB_WORK/$step"
  LLMFAB_STEP=$step
  printf '@@llmfab\tstart\t%s\n' "$step"
  set +e
  (
    set -Eeuo pipefail
    trap 'printf "command failed (exit %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >>"$LLMFAB_STEP_DIR/errtrap"' ERR
    "$fn"
  ) 3>&1 >"$LLMFAB_STEP_DIR/log" 2>&1
  rc=$?
  set -e
  if [[ -s $LLMFAB_STEP_DIR/reboot ]]; then
    llmfab__join "$LLMFAB_STEP_DIR/reboot"
    printf '@@llmfab\treboot\t%s\t%s\n' "$step" "$LLMFAB_JOINED"
  fi
  if [[ -n ${LLMFAB_LOG:-} ]]; then
    sed "s/^/[$step] /" "$LLMFAB_STEP_DIR/log" >>"$LLMFAB_LOG" || true
  fi
  if [[ $LLMFAB_OUTPUT == 1 && -s $LLMFAB_STEP_DIR/log ]]; then
    # The step's own output, one record a line, for fab's local log and --verbose.
    sed "s/\t/ /g; s/^/@@llmfab\tout\t$step\t/" "$LLMFAB_STEP_DIR/log" || true
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
    llmfab__join "$LLMFAB_STEP_DIR/skip"
    message=$LLMFAB_JOINED
  elif [[ -s $LLMFAB_STEP_DIR/changes ]]; then
    status=changed
    llmfab__join "$LLMFAB_STEP_DIR/changes"
    message=$LLMFAB_JOINED
  else
    status=ok
    llmfab__join "$LLMFAB_STEP_DIR/ok"
    message=$LLMFAB_JOINED
  fi
  llmfab__record "$step" "$status" "${message:-nothing to do}" "$tail_b64"
  LLMFAB_STEP_RC=$rc
}

# llmfab_run_steps runs the named steps in order. After a failure the later
# steps of the same group are skipped (they build on it), and after a failure
# outside any group every later step is (LLMFAB_GROUPS: STEP=GROUP entries).
llmfab_run_steps() {
  local failed="" step group entry
  local -A groups=() failed_in=()
  for entry in "${LLMFAB_GROUPS[@]}"; do
    groups[${entry%%=*}]=${entry#*=}
  done
  LLMFAB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmfab.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the path is fixed for this run
  trap "rm -rf -- '$LLMFAB_WORK'" EXIT
  # One mkdir for every step's scratch directory.
  (($# == 0)) || mkdir -p "${@/#/$LLMFAB_WORK/}"
  for step in "$@"; do
    group=${groups[$step]:-}
    if [[ -n ${failed_in[-]:-} ]]; then
      llmfab__record "$step" skipped "not run: step ${failed_in[-]} failed"
      continue
    fi
    if [[ -n $group && -n ${failed_in[$group]:-} ]]; then
      llmfab__record "$step" skipped "not run: step ${failed_in[$group]} failed"
      continue
    fi
    llmfab__run_step "$step" "step_${step//-/_}"
    if ((LLMFAB_STEP_RC != 0)); then
      failed=$step
      failed_in[${group:--}]=$step
    fi
  done
  [[ -z $failed ]]
}

# llmfab__lock takes this node's run lock (fd 7, held until the script ends) for
# a phase that changes the node; a second run is refused with the holder's name.
llmfab__lock() {
  local dir=/run/llmfab holder
  [[ ${LLMFAB_LOCK:-1} == 1 && $LLMFAB_DRY_RUN != 1 ]] || return 0
  install -d -m 0700 -- "$dir"
  exec 7<>"$dir/lock"
  if ! flock -n 7; then
    holder=$(cat -- "$dir/lock.holder" 2>/dev/null || true)
    llmfab__record lock failed "another llmfab run holds this node (${holder:-holder unknown}): wait for it to end, or stop it with kill -- -PGID"
    printf 'error: another llmfab run holds this node: %s\n' "${holder:-holder unknown}" >&2
    return 75
  fi
  printf 'phase %s, process group %s, since %s\n' "${LLMFAB_PHASE:-?}" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$dir/lock.holder"
}

# llmfab__open_log creates the run's log file readable by root only (step
# output may name internal hosts and paths), in a root-only directory of its
# own; a link planted at its name is refused, never written through.
llmfab__open_log() {
  local dir
  dir=$(dirname -- "$1")
  if [[ ! -d $dir ]]; then
    mkdir -p -- "$dir"
    chmod 0700 -- "$dir"
  fi
  if ! llmfab__root_only_dir "$dir" || [[ -L $1 ]]; then
    printf 'error: run log %s: its directory can be written by a user other than root, or it is a link; not logging there\n' "$1" >&2
    LLMFAB_LOG=
    return 0
  fi
  (umask 077 && : >>"$1")
  printf '== llmfab %s on %s, %s\n' "${LLMFAB_STEPS[*]}" "$(hostname 2>/dev/null || echo '?')" "$(date -u +%FT%TZ)" >>"$1"
}

# llmfab_main parses the common options of a generated script, takes the run
# lock and runs the steps listed in LLMFAB_STEPS. It first tells the runner its
# process group, which the runner stops on Ctrl-C or a timeout.
llmfab_main() {
  local arg
  for arg in "$@"; do
    case $arg in
      --dry-run) LLMFAB_DRY_RUN=1 ;;
      --diff) LLMFAB_DIFF=1 ;;
      --output) LLMFAB_OUTPUT=1 ;;
      --log=?*) LLMFAB_LOG=${arg#--log=} ;;
      *)
        printf 'unknown option: %s (known: --dry-run, --diff, --output, --log=FILE)\n' "$arg" >&2
        return 2
        ;;
    esac
  done
  if [[ -n ${LLMFAB_LOG:-} && $LLMFAB_LOG != /dev/null ]]; then
    llmfab__open_log "$LLMFAB_LOG"
  fi
  exec </dev/null
  printf '@@llmfab\tgroup\t%s\n' "$(ps -o pgid= -p "$$" | tr -d ' ')"
  llmfab__lock
  llmfab_run_steps "${LLMFAB_STEPS[@]}"
}
# --- end of llmfab step library ------------------------------------------------
