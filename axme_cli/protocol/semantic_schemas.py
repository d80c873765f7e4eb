"""The schema registry on the wire (AXME family d5, ``api.schemas.*``): a JSON Schema registered for a semantic
type, against which the payloads of intents of that type are validated.

An intent's ``intent_type`` is its semantic type. The registry takes AXME's gateway pattern for it (two or more
dotted parts and a version, the same as ``intent_type``): the axp-spec JSON files ask for three or more parts,
which would leave every two-part intent type (``order.place.v1``) without a schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from axme_cli.protocol.models import INTENT_TYPE_MAX, INTENT_TYPE_PATTERN

SEMANTIC_TYPE_PATTERN = INTENT_TYPE_PATTERN
COMPATIBILITY_MODES = ("strict", "backward", "warn")
SCOPES = ("tenant", "core")
SCHEMA_MODES = ("none", "warn", "enforce")

# The schema_mode an intent gets when it names none, by its schema's compatibility_mode. A ``strict`` schema is
# always enforced: a sender cannot ask for less.
DEFAULT_MODE = {"strict": "enforce", "backward": "enforce", "warn": "warn"}

SemanticType = Annotated[str, StringConstraints(max_length=INTENT_TYPE_MAX, pattern=SEMANTIC_TYPE_PATTERN)]


class SchemaUpsertRequest(BaseModel):
    """``api.schemas.upsert.request.v1``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    semantic_type: SemanticType
    # "schema_json" on the wire (the name pydantic's BaseModel.schema_json takes here); checked by the route
    # (protocol/schemas.check), 400 as AXME answers
    json_schema: dict[str, Any] = Field(alias="schema_json")
    schema_ref: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    compatibility_mode: Literal["strict", "backward", "warn"]
    scope: Literal["tenant", "core"] = "tenant"
    active: StrictBool = True


def schema_mode(compatibility_mode: str, requested: str | None) -> str:
    """How an intent's payload is checked: what the sender asked for (``schema_mode``), else the schema's default;
    a ``strict`` schema is always ``enforce``."""
    if compatibility_mode == "strict" or requested is None:
        return DEFAULT_MODE.get(compatibility_mode, "enforce")
    return requested
