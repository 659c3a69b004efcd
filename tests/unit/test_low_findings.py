"""The review's cheap low findings (L4, L5, L6, L10), each refused or fixed."""

import pytest

from llmfab import config, shell
from llmfab.results import parse_record, printable

NODE = {"nodes": [{"name": "n1", "address": "10.0.0.1"}]}


@pytest.mark.parametrize("section, values", [
    ("gpu", {"model": ""}), ("model", {"id": ""}),
    ("system", {"sysctl": {"fs.protected_symlinks": 0}}), ("system", {"sysctl": {"kernel.yama.ptrace_scope": 0}}),
])
def test_values_that_would_silently_weaken_a_check_or_the_node_are_refused(section, values):
    with pytest.raises(config.ConfigError):
        config.parse({**NODE, section: values})


def test_terminal_escapes_from_a_node_never_reach_the_operators_terminal():
    kind, fields = parse_record("@@llmfab\tlog\tstep\t\x1b]0;owned\x07title \x1b[2Jcleared \x9bx\x07")
    assert fields == ["step", "title cleared x"]
    assert printable("tab\tand\nnewline") == "tab\tand\nnewline"


def test_a_heredoc_never_ends_early_even_when_the_content_names_its_delimiter():
    content = "x\n"
    first = shell.heredoc(content).split("\n")[0].strip("<'")
    tricky = f"{first}\nrm -rf /\n"
    text = shell.heredoc(tricky)
    delimiter = text.split("\n")[0].strip("<'")
    assert delimiter != first and text.endswith(delimiter) and text.count(delimiter) == 2


def test_a_served_name_with_regex_characters_is_matched_literally():
    from llmfab.shell import render
    text = render("engine/engine-ready.sh.j2", container="c", health="h", models="m", info="", served="R1[x",
                  timeout=30, key_file="", logs=[])
    assert 'grep -qF -- "\\"$served\\""' in text
