#!/usr/bin/env bash
# provision.sh sets a test host up on its first start. host_init.sh runs it
# chrooted in the host, with the fleet payload in /run/llmfab-provision and
# HOST_NAME, HOST_ADDR, HOST_PORT and KERNEL_META (1 or 0) in the environment.
# Everything it writes lands in the host's overlay, never on the real machine.
set -Eeuo pipefail

PAYLOAD=/run/llmfab-provision
# SHA-512 crypt of "s3cret-pw": the sudo password of user deploypw.
DEPLOYPW_HASH='$6$llmfabtestharn$Y/Ehvmd.XMr/9h6plDSwdFyjwW1mJMbxnne1AsGyuH0GmigtfByn79v797uY0u6NlEj2LXJDBhXPmMzM6c6uQ1'

# install_stub installs stub $1 over each real path that follows it. With a
# merged /usr, /sbin/x and /usr/sbin/x are one file; installing twice is harmless.
install_stub() {
  local stub=$1 path
  shift
  for path in "$@"; do
    [[ -d ${path%/*} ]] || continue
    install -m 0755 "$PAYLOAD/stubs/$stub" "$path"
  done
}

# install_stubs puts every stub, its library and its fixture texts in place.
install_stubs() {
  install -D -m 0644 "$PAYLOAD/stubs/lib.sh" /usr/lib/llmfab-stubs/lib.sh
  install -d -m 0755 /usr/share/llmfab-stubs /var/lib/llmfab-stubs /var/log/llmfab-stubs
  install -m 0644 "$PAYLOAD"/fixtures/* /usr/share/llmfab-stubs/
  rm -rf /usr/lib/llmfab-stubs/standin
  cp -r "$PAYLOAD/standin" /usr/lib/llmfab-stubs/standin
  : >/var/log/llmfab-stubs/calls.log
  install_stub sysctl /usr/sbin/sysctl /sbin/sysctl
  install_stub systemctl /usr/bin/systemctl /bin/systemctl
  install_stub modprobe /usr/sbin/modprobe /sbin/modprobe
  install_stub lsmod /usr/sbin/lsmod /sbin/lsmod /usr/bin/lsmod
  install_stub nvidia-smi /usr/bin/nvidia-smi
  install_stub ibstat /usr/sbin/ibstat
  install_stub apt-get /usr/bin/apt-get
  # The curl stub hands loopback URLs to the real curl (health checks, smoke tests).
  [[ -e /usr/lib/llmfab-stubs/curl.real ]] || cp -p /usr/bin/curl /usr/lib/llmfab-stubs/curl.real
  install_stub curl /usr/bin/curl
  install_stub nvidia-ctk /usr/bin/nvidia-ctk
  install_stub update-initramfs /usr/sbin/update-initramfs
  # Firewall rules would change the machine itself (shared network namespace).
  install_stub nft /usr/sbin/nft
  install_stub docker /usr/bin/docker /usr/local/bin/docker
  install_stub model-hub /usr/local/bin/modelscope /usr/local/bin/huggingface-cli
}

# configure_sshd writes an sshd_config that works in a chroot without PAM.
configure_sshd() {
  install -m 0600 "$PAYLOAD/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
  install -m 0644 "$PAYLOAD/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
  cat >/etc/ssh/sshd_config <<CONFIG
# Written by the llmfab test harness for test host $HOST_NAME.
ListenAddress $HOST_ADDR:$HOST_PORT
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
# PAM sessions need a real login stack; the chroot has none running.
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
# A fleet's tests may open many sessions at once.
MaxStartups 100:30:200
MaxSessions 100
LogLevel INFO
CONFIG
}

# authorize lets the fleet's client key log in as user $1.
authorize() {
  local user=$1 home
  home=$(getent passwd "$user" | cut -d: -f6)
  install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
  install -m 0600 -o "$user" -g "$user" "$PAYLOAD/client_key.pub" "$home/.ssh/authorized_keys"
}

# name_host sets /etc/hostname and lists every fleet host in /etc/hosts.
name_host() {
  printf '%s\n' "$HOST_NAME" >/etc/hostname
  cat "$PAYLOAD/hosts" >>/etc/hosts
}

# unlock_root lets root log in with a key: without PAM, sshd refuses accounts
# whose password field starts with "!".
unlock_root() {
  if [[ $(getent shadow root | cut -d: -f2) == '!'* ]]; then
    usermod -p '*' root
  fi
}

# reset_root_dotfiles gives root Debian's stock dotfiles. The real machine's
# may be slow (a developer's pyenv init adds 0.4 s to every ssh command) or
# point at tools a fresh GPU node would not have.
reset_root_dotfiles() {
  local name
  for name in bashrc profile; do
    if [[ -f /usr/share/base-files/dot.$name ]]; then
      install -m 0644 "/usr/share/base-files/dot.$name" "/root/.$name"
    elif [[ -f /etc/skel/.$name ]]; then
      install -m 0644 "/etc/skel/.$name" "/root/.$name"
    fi
  done
}

# create_users adds deploy (passwordless sudo) and deploypw (sudo asks for
# its password), both logging in with the fleet's client key.
create_users() {
  useradd --create-home --shell /bin/bash --password '*' deploy
  useradd --create-home --shell /bin/bash --password "$DEPLOYPW_HASH" deploypw
  authorize deploy
  authorize deploypw
  [[ -x /usr/bin/sudo ]] || return 0
  cat >/etc/sudoers.d/llmfab-test-users <<'SUDOERS'
deploy ALL=(ALL:ALL) NOPASSWD: ALL
deploypw ALL=(ALL:ALL) ALL
SUDOERS
  chmod 0440 /etc/sudoers.d/llmfab-test-users
  visudo -cqf /etc/sudoers.d/llmfab-test-users
}

# install_kernel_meta installs the fake kernel meta-packages with real dpkg,
# so that holding them (apt-mark, left real) has something real to hold.
install_kernel_meta() {
  [[ $KERNEL_META == 1 ]] || return 0
  dpkg --force-unsafe-io -i "$PAYLOAD"/debs/*.deb >/dev/null
}

install_stubs
configure_sshd
unlock_root
reset_root_dotfiles
authorize root
name_host
create_users
install_kernel_meta
