"""No import cycle anywhere in ``axme_cli``, counting imports inside functions (``if TYPE_CHECKING:`` blocks left
out): every module can be read knowing only the ones below it. (The engine's own layers are held by
tests/runtime/engine/test_layers.py.)"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "axme_cli"


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_of(p): p for p in PACKAGE.rglob("*.py")}


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of ``body`` and of the blocks nested in it (functions, classes, if/try/with/match ...),
    leaving out ``if TYPE_CHECKING:`` blocks. An import is a statement and a statement stands only in a block, so
    the expressions, most of a tree, need no walk."""
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                yield from _statements([v for v in value if isinstance(v, ast.stmt)])
                for part in value:  # except clauses and match cases hold blocks of their own
                    if isinstance(part, ast.excepthandler | ast.match_case):
                        yield from _statements(part.body)


def _imports(module: str, path: Path) -> set[str]:
    """The modules of ours that ``module`` imports, wherever the import stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: from the package of this module
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:
                    found.add(target)
                elif base in MODULES:
                    found.add(base)
    return found - {module}


def test_axme_cli_has_no_import_cycle() -> None:
    graph = {module: _imports(module, path) for module, path in MODULES.items()}
    assert graph["axme_cli.runtime.core"], "the walk found the runtime's imports"
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path[path.index(module):], module))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
