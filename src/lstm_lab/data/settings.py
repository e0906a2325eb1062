"""Frozen settings of the data layer (text, subwords): checked when made, built from a plain dict (JSON, YAML)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar

from lstm_lab.errors import LstmLabError


class CheckedSettings:
    """Mixin for a frozen dataclass: ``label`` names it in errors; ``_refuse`` raises on the first failed check."""

    label: ClassVar[str]

    def _refuse(self, checks: dict[str, bool]) -> None:
        for name, ok in checks.items():
            if not ok:
                raise LstmLabError(f"{self.label}: {name}={getattr(self, name)!r} is not valid")

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LstmLabError(f"{cls.label}: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**data)
