"""The engine's modules import each other in one direction only: no cycle, counting imports inside functions
(``if TYPE_CHECKING:`` blocks left out), so each module can be read knowing only the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[3] / "axme_cli" / "runtime" / "engine"
PACKAGE = "axme_cli.runtime.engine"


def _imports(path: Path) -> set[str]:
    """The engine modules ``path`` imports, wherever the import stands."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n.removeprefix(PACKAGE + ".").split(".")[0] for n in names if n.startswith(PACKAGE + ".")}
    return found


def test_the_engine_has_no_import_cycle() -> None:
    graph = {p.stem: _imports(p) - {p.stem} for p in ENGINE.glob("*.py")}
    assert graph["intents"], "the walk found the engine's imports"
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path[path.index(module):], module))
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_changes_know_nothing_of_who_reacts() -> None:
    """The low modules a change goes through import none of the reactions."""
    reactions = {"workflows", "runs", "inbox", "human", "human_tasks", "outbound", "delivery", "reactions"}
    for low in ("changes", "effects", "views", "codec", "saga", "reminders"):
        assert not _imports(ENGINE / f"{low}.py") & reactions, low
