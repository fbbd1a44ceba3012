"""The ground every config section stands on: the error type, the strict base model, the name patterns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

UNIT_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
SENSOR_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MASK = "**********"


class ConfigError(ValueError):
    """An invalid configuration: one "field.path: message" line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
