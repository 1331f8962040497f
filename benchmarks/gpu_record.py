"""The GPU check's table and its record in benchmarks/RESULTS.json (run_all's layout): written,
merged with an earlier record when only some sections were rerun, and imported from a copy
brought back from the GPU machine."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "gpu_check"


def table(title: str, outcomes: dict[str, dict]) -> str:
    """One table: a line per figure, sections in the order given."""
    lines = [title, f"{'section':<14}{'figure':<52}value"]
    for name, outcome in outcomes.items():
        if outcome["status"] != "ok":
            lines.append(f"{name:<14}{outcome['status'].upper() + ': ' + outcome['reason']}")
            continue
        for figure, value in outcome["rows"]:
            lines.append(f"{name:<14}{figure:<52}{value}")
        when = f", {outcome['date']}" if outcome.get("kept") else ""
        lines.append(f"{name:<14}{'(section time' + when + ')':<52}{outcome['seconds']:.0f} s")
    return "\n".join(lines)


def write_record(path: Path, record: dict) -> None:
    """Put `record` into the benchmark records at `path`, replacing an earlier gpu_check."""
    if path.exists():
        data = json.loads(path.read_text())
        data["records"] = [r for r in data["records"] if r.get("name") != record["name"]]
    else:  # run_all's layout, so its `--only` reruns can read the file
        data = {"command": record["command"], "total_s": record["seconds"],
                "date": record["date"], "records": []}
    data["records"].append(record)
    path.write_text(json.dumps(data, indent=1, default=float) + "\n")


def earlier_sections(path: str | None, gpu: str | None, dry: bool) -> dict[str, dict]:
    """The sections of the gpu_check record at `path` made on the same GPU (or also a dry
    run), each marked `kept`: what a run of some sections only keeps of the others."""
    if not path or not Path(path).exists():
        return {}
    for record in json.loads(Path(path).read_text())["records"]:
        if record.get("name") == NAME and record.get("gpu") == gpu \
                and record.get("dry_run") == dry:
            return {name: {**outcome, "kept": True}
                    for name, outcome in record["figures"]["sections"].items()}
    return {}


def import_record(source: Path, target: Path) -> dict:
    """Copy the gpu_check record of `source` into the records at `target`; the record."""
    records = json.loads(source.read_text())["records"]
    record = next((r for r in records if r.get("name") == NAME), None)
    if record is None:
        raise SystemExit(f"gpu_check: {source} holds no gpu_check record")
    write_record(target, record)
    return record
