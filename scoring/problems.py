"""Bad logs are reported, not fatal: every problem is collected with the path it concerns.

Scoring goes on past a missing or truncated CSV, a NaN metric column or an unknown workload; the
problems end up in the report's warnings section. With ``strict=True`` they are raised together at
the end as one :class:`ScoringError`, so a user fixes all of them in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ScoringError(ValueError):
    """Raised in strict mode, listing every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) found while scoring:\n{listing}")


@dataclass
class Problems:
    """An ordered, duplicate-free list of human-readable problems."""

    messages: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, path: str | Path | None, message: str) -> None:
        self._append(f"{path}: {message}" if path is not None else message)

    def extend(self, other: Problems) -> None:
        for message in other.messages:
            self._append(message)

    def _append(self, text: str) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.messages.append(text)

    def raise_if_any(self) -> None:
        if self.messages:
            raise ScoringError(self.messages)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def __len__(self) -> int:
        return len(self.messages)
