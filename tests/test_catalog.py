"""Chat names a workflow; it can never load, or probe for, a file by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import NotFound
from bot.runtime.catalog import Catalog

HELLO = """\
name: hello
steps:
  say:
    run: ["echo", "hi"]
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "hello.yaml").write_text(HELLO)
    (tmp_path / "outside.yaml").write_text(HELLO.replace("hello", "outside"))
    return Catalog(folder)


def test_a_workflow_is_found_by_name(catalog: Catalog) -> None:
    assert catalog.find("hello").spec.name == "hello"


@pytest.mark.parametrize(
    "given",
    ["../outside.yaml", "../outside", "/etc/passwd", "/etc/no-such-file.yml", ".hidden", "a\\b"],
)
def test_a_path_is_not_a_workflow_name(catalog: Catalog, given: str) -> None:
    with pytest.raises(NotFound) as refused:
        catalog.find(given)
    # The same answer whether or not the file exists: nothing is learnt about the server's files.
    assert str(refused.value) == f"No workflow named {given}. Workflows: hello."


def test_a_file_name_in_the_folder_is_told_the_name_to_use(catalog: Catalog) -> None:
    with pytest.raises(NotFound, match=r"^No workflow named hello.yaml. Did you mean hello\?$"):
        catalog.find("hello.yaml")
