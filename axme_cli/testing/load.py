"""Reading scenario test files and the bundles they name; every problem is a line naming the file and the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axme_cli.protocol import scenario, scenario_tests


@dataclass(frozen=True)
class LoadedFile:
    path: str  # as given on the command line
    folder: str  # where the test file is: the bundle's path and a real agent's command start from there
    bundle_path: str
    test: scenario_tests.TestFile


def load(path: str) -> tuple[LoadedFile | None, list[str]]:
    """A test file and its bundle, both validated: (the file, []) or (None, problems, each naming its field)."""
    raw, problem = _read_json(Path(path))
    if problem is not None:
        return None, [f"{path}: {problem}"]
    ref, problems = scenario_tests.bundle_reference(raw, Path(path).name)
    if ref is None:
        return None, [f"{path}: {p}" for p in problems]
    folder = Path(path).parent
    bundle_file = folder / ref
    bundle_raw, problem = _read_json(bundle_file)
    if problem is not None:
        return None, [f"{path}: bundle: {bundle_file}: {problem}"]
    model, errors, _ = scenario.check(bundle_raw)
    if errors or model is None:
        return None, [f"{bundle_file} (the bundle of {path}): {e}" for e in errors]
    test, problems = scenario_tests.check(raw, bundle_raw, model)
    if test is None:
        return None, [f"{path}: {p}" for p in problems]
    return LoadedFile(path, str(folder), str(bundle_file), test), []


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "no such file"
    except IsADirectoryError:
        return None, "is a folder, not a file"
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    return scenario.parse_json_text(text)
