"""Every value that goes into shell is quoted by construction."""

import subprocess

import pytest

from llmfab.shell import Raw, heredoc, quote, words

HOSTILE = ["$(reboot)", "a; rm -rf /", "`id`", "x' y \"z", "line\nbreak", "*", ""]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_comes_back_out_of_bash_unchanged(value):
    out = subprocess.run(["bash", "-c", f"printf %s {quote(value)}"], capture_output=True, text=True, check=True)
    assert out.stdout == value


def test_a_word_list_keeps_each_value_as_one_argument():
    out = subprocess.run(["bash", "-c", f"printf '<%s>' {words(HOSTILE[:4])}"], capture_output=True, text=True)
    assert out.stdout == "".join(f"<{v}>" for v in HOSTILE[:4])


def test_raw_text_is_passed_through_and_ints_need_no_quotes():
    assert quote(Raw("$x")) == "$x"
    assert quote(65535) == "65535"


@pytest.mark.parametrize("value", [None, True, ["a"]])
def test_values_without_a_shell_spelling_are_rejected(value):
    with pytest.raises(TypeError):
        quote(value)


def test_a_heredoc_carries_its_content_literally():
    content = "A=$(reboot)\nB=`id`\n'quoted' \"too\"\n"
    out = subprocess.run(["bash", "-c", f"cat {heredoc(content)}"], capture_output=True, text=True, check=True)
    assert out.stdout == content
