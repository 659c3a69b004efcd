"""The fixture helper returns exactly what the program printed."""
import pytest

from fixture_text import FIXTURES, fixture_header, load_fixture, split_fixture

ALL = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/**/*.txt"))


def test_there_are_field_and_h200_fixtures():
    assert any(p.startswith("field/") for p in ALL) and any(p.startswith("h200/") for p in ALL)


@pytest.mark.parametrize("relpath", ALL)
def test_every_fixture_names_its_source_and_has_output(relpath):
    header = fixture_header(relpath)
    assert header[0].startswith("# source: ") and header[1].startswith("# what: ")
    assert load_fixture(relpath).strip()


def test_an_output_that_starts_with_a_root_prompt_keeps_it():
    assert load_fixture("field/ib/ibstat-h20-ib-ndr400-active.txt").startswith("# ibstat\n")
    assert load_fixture("field/fabricmanager/systemctl-status-fm-driver-version-mismatch.txt").startswith(
        "# systemctl status nvidia-fabricmanager\n")


def test_the_output_is_unchanged_byte_for_byte_after_the_separator():
    header, output = split_fixture("# source: x\n# what: y\n# ---\n  a\n# ---\n\tb  \n")
    assert header == ["# source: x", "# what: y"] and output == "  a\n# ---\n\tb  \n"


def test_a_file_without_the_separator_is_refused():
    with pytest.raises(ValueError):
        split_fixture("# source: x\nno separator\n")
