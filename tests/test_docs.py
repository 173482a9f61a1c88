"""The docs keep up with the code: every setting and every command is explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = README + "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(name: str) -> None:
    assert f"HUB_{name.upper()}" in README


def test_readme_shows_the_two_commands_first() -> None:
    first = README.index("make demo")
    assert first < README.index("## Concepts")
    assert README.index("make test") < README.index("## Concepts")


def test_every_command_has_help_and_is_documented() -> None:
    """`hub --help` lists every command group with its help text, and the docs mention each."""
    runner = CliRunner()
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    groups = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert len(groups) >= 15
    for name in groups:
        assert name is not None
        assert f" {name} " in result.output or f"│ {name}" in result.output
        assert f"hub {name}" in DOCS, f"`hub {name}` is not in README.md or docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in README, page.name
