"""Help text and short flags shared by the tasks' arguments, so `fab -h TASK` reads the same everywhere.

Invoke gives each argument the first free letter of its name as a short flag,
so `-p` meant --parallel in one task and --port or --prompts in others. Here a
short flag exists only for the arguments in SHORT, and means the same in every
task; every other argument is long-only.
"""

import difflib

from rich.text import Text
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


def _nearest(word: str, names) -> str:
    """" (did you mean X?)" for the name nearest WORD, or ""."""
    close = difflib.get_close_matches(word, list(names), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _or_list(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def engine_name(engine: str | None) -> str | None:
    """ENGINE from --engine, checked like a config value: a typo stops with the names that exist."""
    from llmfab.engines import list_engines

    known = sorted(list_engines())
    if engine and engine not in known:
        raise UsageError(f"--engine: {engine!r} is not an engine; use {_or_list(known)}" + _nearest(engine, known))
    return engine


def engine_version(engine: str, version: str | None) -> str | None:
    """VERSION from --version, checked against ENGINE's profiles ("0.8.5" is v0.8.5): a typo stops
    with the versions that exist."""
    from llmfab.engines import list_versions

    known = list_versions(engine)
    if version and version.lstrip("v") not in {v.lstrip("v") for v in known}:
        raise UsageError(f"--version: no {engine} profile {version!r}; use one of {', '.join(known)}"
                         + _nearest(version, known))
    return version


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


def engine_override(config, engine: str | None, version: str | None, out=None):
    """CONFIG with --engine / --version applied, through the config parser (config.with_engine).

    The one place an engine override is made: every other engine field
    (nccl_timeout, ports, ...) is kept. engine.options belong to their own
    engine: another engine leaves them out, and says so on OUT."""
    engine = engine_name(engine)
    engine_version(engine or config.engine.name, version)
    if engine and engine != config.engine.name and config.engine.options and out is not None:
        out.print(Text(
            f"note: --engine {engine} leaves out engine.options ({', '.join(sorted(config.engine.options))}), "
            f"which are {config.engine.name}'s; to set {engine}'s, put engine.name: {engine} and its options "
            "in the config", style="yellow"))
    return config.with_engine(engine, version)


def session_engine(session, engine: str | None, version: str | None):
    """SESSION with its run pointed at ENGINE (and VERSION); see engine_override."""
    from dataclasses import replace

    if not engine and not version:
        return session
    config = engine_override(session.config, engine, version, session.reporter.out)
    return session.with_run(replace(session.run, config=config))
