#!/usr/bin/env bash
# host_init.sh becomes PID 1 of one test host: TestHost.start() runs it as
#
#   unshare --mount --uts --pid --fork --kill-child -- \
#       bash host_init.sh llmfab-testhost OWNER HOST_DIR
#
# with HOST_NAME, HOST_ADDR, HOST_PORT, FLEET_PAYLOAD, KERNEL_META and HOST_BINDS in the
# environment. "llmfab-testhost OWNER HOST_DIR" stays on the command line of
# PID 1 so a later run can find and end hosts whose owner died.
#
# It mounts the host's root (an overlay of the real root whose upper dir keeps
# every write) and the pseudo filesystems, provisions the host on its first
# start, then becomes a shell chrooted in the host that waits on sshd. All of
# it happens in private mount, UTS and PID namespaces: killing PID 1 ends the
# host and drops its mounts, and nothing mounted here reaches the real machine.
set -Eeuo pipefail

MARKER=$1
OWNER=$2
HOST_DIR=$3
ROOT=$HOST_DIR/root
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# mount_root mounts the overlay root; writes land in the host's upper dir.
mount_root() {
  # Private first: no mount below may propagate back to the real machine.
  mount --make-rprivate /
  mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$HOST_DIR/upper,workdir=$HOST_DIR/work" "$ROOT"
}

# bind_read_only bind-mounts $1 onto $2 and makes the bind read-only.
bind_read_only() {
  mount --bind "$1" "$2"
  mount -o remount,bind,ro "$2"
}

# mount_system mounts /proc, /dev, /sys, /tmp and /run inside the host.
mount_system() {
  # A fresh /proc shows only this host's processes (its own PID namespace).
  mount -t proc proc "$ROOT/proc"
  # The network namespace is shared with the real machine: /proc/sys must
  # stay read-only so no test can ever change a real kernel setting.
  bind_read_only "$ROOT/proc/sys" "$ROOT/proc/sys"
  if [[ -e $ROOT/proc/sysrq-trigger ]]; then
    bind_read_only "$ROOT/proc/sysrq-trigger" "$ROOT/proc/sysrq-trigger"
  fi
  mount --rbind /dev "$ROOT/dev"
  # Engines share memory between their processes there (vLLM needs 160 MiB and more).
  mount -t tmpfs -o mode=1777,size=2g tmpfs "$ROOT/dev/shm"
  bind_read_only /sys "$ROOT/sys"
  mount -t tmpfs -o mode=1777 tmpfs "$ROOT/tmp"
  mount -t tmpfs -o mode=0755,size=64m tmpfs "$ROOT/run"
  # sshd refuses to start without its privilege separation directory.
  install -d -m 0755 "$ROOT/run/sshd"
  install -d -m 1777 "$ROOT/run/lock"
}

# bind_hidden binds, read-only and at the same path, each directory of
# HOST_BINDS (one per line): the test's checkout and Python environments when
# they lie where the overlay cannot show them (another mount, /tmp, /run).
bind_hidden() {
  local dir
  while IFS= read -r dir; do
    [[ -n $dir ]] || continue
    mkdir -p "$ROOT$dir"
    bind_read_only "$dir" "$ROOT$dir"
  done <<<"${HOST_BINDS-}"
}

# provision runs provision.sh inside the host once; restarts keep its result.
provision() {
  local payload=/run/llmfab-provision
  [[ -e $HOST_DIR/provisioned ]] && return 0
  mkdir -p "$ROOT$payload"
  cp -r "$FLEET_PAYLOAD/." "$ROOT$payload/"
  cp "$HOST_DIR/ssh_host_ed25519_key" "$HOST_DIR/ssh_host_ed25519_key.pub" "$ROOT$payload/"
  # Chrooted, every path (and every symlink) resolves inside the host.
  chroot "$ROOT" /usr/bin/env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 \
    HOST_NAME="$HOST_NAME" HOST_ADDR="$HOST_ADDR" HOST_PORT="$HOST_PORT" \
    KERNEL_META="$KERNEL_META" /bin/bash "$payload/provision.sh"
  rm -rf "${ROOT:?}$payload"
  : >"$HOST_DIR/provisioned"
}

# run_sshd becomes a shell in the host that waits on sshd: as PID 1 a shell
# reaps orphaned processes, and keeps the marker on its command line.
run_sshd() {
  hostname "$HOST_NAME"
  cd "$ROOT"
  exec chroot "$ROOT" /bin/bash -c \
    '/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config & wait' "$MARKER" "$OWNER" "$HOST_DIR"
}

mount_root
mount_system
bind_hidden
provision
run_sshd
