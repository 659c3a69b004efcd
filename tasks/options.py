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


def whole_numbers_fail_in_one_line() -> None:
    """Make `--parallel abc` (any int argument) end in one line naming the option, not a traceback.

    Invoke casts an argument to its default's type while parsing, before any
    task runs, and lets the ValueError escape; its Program prints a ParseError
    as one line and exits 1, so the cast failure becomes one.
    """
    from invoke.exceptions import ParseError
    from invoke.parser.argument import Argument

    original = Argument.set_value
    if getattr(original, "llmfab", False):
        return

    def set_value(self, value, cast=True):
        try:
            original(self, value, cast)
        except ValueError:
            flag = "--" + self.name.replace("_", "-")
            raise ParseError(f"{flag}: {value!r} is not a whole number; give one, e.g. {flag} 8") from None

    set_value.llmfab = True
    Argument.set_value = set_value
