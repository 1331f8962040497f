"""The reliability suite's ledger: every test records the faults it injected and how many the
system survived, and the resource figures it measured; the terminal summary prints the table
(docs/reliability.md quotes it). Set TURNWISE_RELIABILITY_REPORT=path to also write it as JSON.
"""

from __future__ import annotations

import json
import os

from fault_ledger import FIGURES, LEDGER


def pytest_terminal_summary(terminalreporter) -> None:
    if not LEDGER and not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability: faults injected / survived / lost")
    totals = [0, 0]
    for area, fault, injected, survived in LEDGER:
        totals[0] += injected
        totals[1] += survived
        write(f"  {area:<10} {fault:<48} {injected:>6} {survived:>6} {injected - survived:>4}")
    write(f"  {'total':<59} {totals[0]:>6} {totals[1]:>6} {totals[0] - totals[1]:>4}")
    if FIGURES:
        terminalreporter.section("reliability: measured figures")
        for name, value in FIGURES.items():
            write(f"  {name:<60} {value}")
    path = os.environ.get("TURNWISE_RELIABILITY_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({"faults": [dict(zip(("area", "fault", "injected", "survived"), row))
                                  for row in LEDGER], "figures": FIGURES}, f, indent=2)
