"""Exit statuses, named (httpie's ExitStatus idea): scripts and CI can rely on them."""

from enum import IntEnum


class ExitStatus(IntEnum):
    SUCCESS = 0
    # At least one host failed a step or was unreachable.
    HOST_FAILED = 1
    # The config (or a command-line value) is invalid; nothing was contacted.
    CONFIG_INVALID = 2
    # A preflight or capacity check refused the layout before anything ran.
    REFUSED = 3
    # A run that would change hosts was not confirmed (no --yes, answer not yes).
    NOT_CONFIRMED = 4
    INTERRUPTED = 130
