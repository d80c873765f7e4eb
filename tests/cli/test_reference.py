"""docs/cli.md is what the command tree says today (regenerate: python -m axme_cli.cli.reference > docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

from axme_cli.cli.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_cli_reference_is_not_stale() -> None:
    fresh = render()
    assert DOC.read_text() == fresh, (
        "docs/cli.md is stale: run `python -m axme_cli.cli.reference > docs/cli.md` and commit it")


def test_the_reference_covers_every_visible_command() -> None:
    text = render()
    for heading in ("### `axme intents`", "#### `axme intents describe`", "#### `axme context rename`",
                    "### `axme completion`"):
        assert heading in text
    assert "--install-completion" in text and "`--typed-field`, `-F`" in text
