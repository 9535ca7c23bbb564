"""What the API's requests carry: strict bodies (an unknown field is a 400 problem, not ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A request body: unknown fields are refused, so a misspelt one never passes silently."""

    model_config = ConfigDict(extra="forbid")
