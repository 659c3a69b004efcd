"""Help text shared by the tasks' arguments, so `fab -h TASK` reads the same everywhere."""

CONFIG = "cluster config YAML (default: $LLMFAB_CONFIG, else configs/h20-2x8.yaml)"
DRY_RUN = "show per host what each step would change, and change nothing"
PARALLEL = "at most N hosts at once (default: ssh.parallel in the config, 32)"
ACCEPT_NEW = "trust and record host keys not yet in known_hosts (first use only; changed keys are still refused)"
ASK_SUDO = "non-root SSH user: ask for the sudo password once, for all hosts ($LLMFAB_SUDO_PASSWORD also works)"

SSH = {
    "config": CONFIG,
    "parallel": PARALLEL,
    "accept-new-host-keys": ACCEPT_NEW,
    "ask-sudo-pass": ASK_SUDO,
}
