"""Help text and short flags shared by the tasks' arguments, so `fab -h TASK` reads the same everywhere.

Invoke gives each argument the first free letter of its name as a short flag,
so `-p` meant --parallel in one task and --port or --prompts in others. Here a
short flag exists only for the arguments in SHORT, and means the same in every
task; every other argument is long-only.
"""

import difflib

from invoke import Task
from invoke import task as invoke_task

from llmfab.errors import UsageError

CONFIG = ("cluster config YAML (default: $LLMFAB_CONFIG, else ./llmfab.yaml; tasks that touch hosts "
          "never fall back to the example cluster)")
EXAMPLE_CONFIG = "cluster config YAML (default: $LLMFAB_CONFIG, else ./llmfab.yaml, else configs/h20-2x8.yaml)"
DRY_RUN = "show per host what each step would change, and change nothing"
DIFF = "with each change to a managed file, show its diff (with --dry-run: the diff it would apply)"
VERBOSE = "print each step's own output (apt, installers, docker) as the step finishes"
YES = "do not ask before changing hosts (scripts, CI; LLMFAB_ASSUME_YES=1 also works)"
PARALLEL = "at most N hosts at once (default: ssh.parallel in the config, 32)"
ACCEPT_NEW = "trust and record host keys not yet in known_hosts (first use only; changed keys are still refused)"
ASK_SUDO = "non-root SSH user: ask for the sudo password once, for all hosts ($LLMFAB_SUDO_PASSWORD also works)"

SSH = {
    "config": CONFIG,
    "parallel": PARALLEL,
    "accept-new-host-keys": ACCEPT_NEW,
    "ask-sudo-pass": ASK_SUDO,
}

# The only short flags, one meaning each across all tasks.
SHORT = {"dry-run": "n", "yes": "y", "verbose": "v", "parallel": "p", "engine": "e"}


class LlmfabTask(Task):
    """An Invoke task whose short flags come from SHORT, not from first letters."""

    def get_arguments(self, *args, **kwargs):
        # Invoke pops each help text as it uses it; keep them, so the arguments can be listed twice.
        kept = dict(self.help)
        try:
            return super().get_arguments(*args, **kwargs)
        finally:
            self.help = kept

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        long_name = opts["names"][0]
        short = SHORT.get(long_name)
        opts["names"] = [long_name] + ([short] if short and short not in taken_names else [])
        return opts


def task(*args, **kwargs):
    """invoke.task with llmfab's short flags (see SHORT)."""
    kwargs.update(klass=LlmfabTask, auto_shortflags=False)
    return invoke_task(*args, **kwargs)


ENGINES = ("vllm", "sglang", "trtllm")


def engine_name(engine: str | None) -> str | None:
    """ENGINE from --engine, checked like a config value: a typo stops with the names that exist."""
    if engine and engine not in ENGINES:
        close = difflib.get_close_matches(engine, ENGINES, n=1)
        raise UsageError(f"--engine {engine}: not an engine llmfab knows; use one of {', '.join(ENGINES)}"
                         + (f" (did you mean {close[0]}?)" if close else ""))
    return engine


def engine_version(engine: str, version: str | None) -> str | None:
    """VERSION from --version, checked against ENGINE's profiles: a typo stops with the versions that exist."""
    from llmfab.engines import list_versions

    known = list_versions(engine)
    if version and version not in known:
        close = difflib.get_close_matches(version, known, n=1)
        raise UsageError(f"--version {version}: no {engine} profile of that version; known: {', '.join(known)}"
                         + (f" (did you mean {close[0]}?)" if close else ""))
    return version
