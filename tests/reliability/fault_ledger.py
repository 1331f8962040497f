"""Where reliability tests record what they injected and measured (printed by conftest.py)."""

from __future__ import annotations

LEDGER: list[tuple[str, str, int, int]] = []  # (area, fault, injected, survived)
FIGURES: dict[str, str] = {}


def record(area: str, fault: str, injected: int, survived: int) -> None:
    """Call after the test's assertions: `survived` faults ended as the design says they must."""
    LEDGER.append((area, fault, injected, survived))


def figure(name: str, value: float | str, unit: str = "") -> None:
    FIGURES[name] = f"{value:.3g} {unit}".strip() if isinstance(value, float) else f"{value} {unit}".strip()
