"""Loading local open-domain QA files (NQ-, HotpotQA- or Search-R1-style) through `datasets`.

A question file is JSON lines, JSON or parquet with a `question` and gold answers under one of
`golden_answers` (Search-R1), `answers` (NQ-open), `answer` (HotpotQA) or
`reward_model.ground_truth.target` (Search-R1's parquet). HotpotQA's `context` (either
`[[title, [sentences]], ...]` or `{"title": [...], "sentences": [[...]]}`) becomes documents.
A corpus file holds one document per row: `id`, `title` and `text`, or Search-R1's `contents`
(the title on the first line, in quotes, then the text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def read_rows(path: str, *, cache_dir: str | None = None) -> list[dict[str, Any]]:
    """The rows of a local JSON/JSONL/parquet file; a malformed row stops with its line."""
    rows, bad = read_rows_checked(path, cache_dir=cache_dir)
    if bad:
        raise ValueError(bad[0])
    return [row for _, row in rows]


def read_rows_checked(path: str, *, cache_dir: str | None = None
                      ) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """((where, row) pairs, problems) of a local data file; `where` is "file:line" for JSONL
    (read line by line, so one bad line is named, not a whole-file parser error) and
    "file row n" for JSON and parquet (read with `datasets`)."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"search_qa: data file {path!r} does not exist")
    kind = _FORMATS.get(file.suffix)
    if kind is None:
        raise ValueError(f"search_qa: data file {path!r} must end in one of {sorted(_FORMATS)}")
    if file.suffix == ".jsonl":
        rows, bad = [], []
        with open(file, encoding="utf-8", errors="strict") as f:
            try:
                lines = list(f)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: not UTF-8 text ({exc})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(row, dict):
                bad.append(f"{path}:{number}: a row must be a JSON object, got "
                           f"{type(row).__name__}")
                continue
            rows.append((f"{path}:{number}", row))
        return rows, bad
    import datasets

    table = datasets.load_dataset(kind, data_files=str(file), split="train", cache_dir=cache_dir)
    return [(f"{path} row {n}", row) for n, row in enumerate(table)], []


def load_questions(path: str, *, cache_dir: str | None = None,
                   skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Questions as dicts: `id`, `question`, `answers` (list), `type`, `documents` (from context).

    A bad row stops the load with a message naming its file and line; with `skipped` (a list)
    it is left out and its problem appended there instead. A file with no question stops too.
    """
    rows, problems = read_rows_checked(path, cache_dir=cache_dir)
    out = []
    for n, (where, row) in enumerate(rows):
        question = row.get("question")
        answers = _answers(row)
        if not isinstance(question, str) or not question.strip():
            problems.append(f"{where}: no 'question' (a non-empty string)")
        elif not answers:
            problems.append(f"{where}: no gold answer (looked for 'golden_answers', 'answers', "
                            "'answer', 'reward_model.ground_truth.target')")
        else:
            out.append({"id": str(row.get("id", row.get("_id", n))), "question": question,
                        "answers": answers, "type": row.get("type") or "open",
                        "documents": _context_documents(row.get("context"))})
    if problems:
        if skipped is None:
            raise ValueError(f"{problems[0]} ({len(problems)} bad row(s) in all; "
                             "env.options.skip_bad_rows=true leaves them out)")
        skipped.extend(problems)
    if not out:
        raise ValueError(f"search_qa: {path} holds no usable question"
                         + (f" ({len(problems)} bad row(s) skipped)" if problems else ""))
    return out


def load_corpus(path: str, *, cache_dir: str | None = None) -> list[dict[str, str]]:
    """Documents as dicts with `id`, `title`, `text`."""
    rows, bad = read_rows_checked(path, cache_dir=cache_dir)
    if bad:
        raise ValueError(bad[0])
    docs = []
    for n, (where, row) in enumerate(rows):
        if "contents" in row and "text" not in row:
            head, _, body = str(row["contents"]).partition("\n")
            title, text = head.strip().strip('"'), body.strip()
        elif "text" in row:
            title, text = str(row.get("title", "")), str(row["text"])
        else:
            raise ValueError(f"{where}: a document needs 'text' (and 'title') or 'contents'")
        docs.append({"id": str(row.get("id", n)), "title": title, "text": text})
    if not docs:
        raise ValueError(f"search_qa: corpus file {path} holds no document")
    return docs


def _answers(row: dict[str, Any]) -> list[str]:
    for key in ("golden_answers", "answers", "answer"):
        if row.get(key) is not None:
            value = row[key]
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    target = ((row.get("reward_model") or {}).get("ground_truth") or {}).get("target")
    if target is not None:
        return [str(v) for v in target] if isinstance(target, (list, tuple)) else [str(target)]
    return []


def _context_documents(context: Any) -> list[dict[str, str]]:
    if not context:
        return []
    if isinstance(context, dict):  # the HF hotpot_qa layout
        pairs = zip(context.get("title", []), context.get("sentences", []))
    else:
        pairs = ((item[0], item[1]) for item in context)
    return [{"id": title, "title": title, "text": " ".join(s.strip() for s in sentences)}
            for title, sentences in pairs]
