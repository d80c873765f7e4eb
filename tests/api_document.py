"""The runtime's OpenAPI document, built from the route table of a runtime that is not started, once per process:
the hostile-input, scoping and strict-input tests each build their route matrices from it when collected, in every
worker of `pytest -n` (~0.12 s of CPU per build)."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def api_document() -> dict[str, Any]:
    """The document (shared: read it, never change it)."""
    from axme_cli.runtime.api import openapi
    from axme_cli.runtime.api.app import build_app
    from axme_cli.runtime.core import Runtime
    from axme_cli.runtime.settings import Settings

    return openapi.document(build_app(Runtime(object(), Settings()), manage_runtime=False).routes)  # type: ignore[arg-type]
