"""The recipe schema as a Markdown page, rendered from the pydantic models of trainer/config.py:
every section and key with its type, constraints, default and the source comment explaining it.

`python docs/hooks/recipe_schema.py` prints the page; the site's hook (docs/hooks/site.py) adds
it as `reference/recipe.md` at build time, so it cannot drift from the code.
"""

from __future__ import annotations

import ast
import inspect
import io
import tokenize
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from turnwise.trainer import config as config_module

# A constraint's class -> how the page writes it.
_BOUNDS = {annotated_types.Ge: (">=", "ge"), annotated_types.Gt: (">", "gt"),
           annotated_types.Le: ("<=", "le"), annotated_types.Lt: ("<", "lt")}


def source_notes(source: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(class, field) -> (its annotation as written, the comments on and directly above it)."""
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    lines = source.splitlines()
    notes = {}
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, line = [], stmt.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            after = [comments[n] for n in range(stmt.lineno, stmt.end_lineno + 1) if n in comments]
            text = " ".join(c for c in [*above, *after] if not c.startswith("--"))
            notes[(cls.name, stmt.target.id)] = (ast.unparse(stmt.annotation), text)
    return notes


def _plain(text: str) -> str:
    """Source text for Markdown: `<` and `>` outside code spans are text, not HTML tags."""
    parts = text.split("`")
    parts[::2] = [p.replace("<", "&lt;").replace(">", "&gt;") for p in parts[::2]]
    return "`".join(parts)


def _anchor(path: str) -> str:
    return path.replace(".", "-").replace("_", "-")


def type_text(node: ast.expr, sections: dict[str, str]) -> str:
    """An annotation in words: literals as their values, unions with 'or', sections linked."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return f"{type_text(node.left, sections)} or {type_text(node.right, sections)}"
    if isinstance(node, ast.Constant):
        return "null" if node.value is None else f"`{node.value!r}`".replace("'", '"')
    if isinstance(node, ast.Name):
        if node.id in sections:
            return f"[{sections[node.id]}](#{_anchor(sections[node.id])})"
        return {"Any": "any", "bool": "bool", "str": "str"}.get(node.id, node.id)
    if isinstance(node, ast.Subscript):
        head = ast.unparse(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == "Literal":
            return "one of " + ", ".join(type_text(a, sections) for a in args)
        if head == "list":
            return f"list of {type_text(args[0], sections)}"
        if head == "dict":
            return f"mapping of {type_text(args[0], sections)} to {type_text(args[1], sections)}"
    return f"`{ast.unparse(node)}`"


def default_text(field: Any) -> str:
    """A field's default as YAML would spell it; `required` where there is none."""
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    value = field.default
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'.replace("\n", "\\n") if value else '`""`'
    return f"`{value!r}`"


def bounds_text(field: Any) -> str:
    """Numeric constraints of a field, e.g. `>= 1, <= 1`."""
    parts = []
    for meta in field.metadata:
        for kind, (sign, attribute) in _BOUNDS.items():
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attribute)}")
    return ", ".join(parts)


def _section_types(model: type[BaseModel], path: str, out: dict[str, str]) -> None:
    """Map each section class to the dotted path it is found at (first path wins)."""
    for name, field in model.model_fields.items():
        for cls in _models_in(field.annotation):
            if cls.__name__ not in out:
                out[cls.__name__] = f"{path}.{name}" if path else name
                _section_types(cls, out[cls.__name__], out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [a for arg in getattr(annotation, "__args__", ()) for a in _models_in(arg)]


def render() -> str:
    """The whole page."""
    source = inspect.getsource(config_module)
    notes = source_notes(source)
    sections: dict[str, str] = {}
    _section_types(config_module.Config, "", sections)
    out = ["# Recipe schema", "",
           "Every key a recipe may set, generated from the pydantic models in "
           "`trainer/config.py` when the site is built (`make docs`). An unknown key, a wrong "
           "type or a value outside its bounds stops `turnwise train`, `eval` and `config` at "
           "start, naming the key. *Meaning* is the comment beside the key in the source.", ""]
    out += _table("Top level", "top-level", config_module.Config, notes, sections)
    for cls_name, path in sections.items():
        cls = getattr(config_module, cls_name)
        out += _table(f"`{path}`", _anchor(path), cls, notes, sections)
    return "\n".join(out)


def _table(title: str, anchor: str, model: type[BaseModel], notes: dict,
           sections: dict[str, str]) -> list[str]:
    rows = [f"## {title} {{ #{anchor} }}", ""]
    doc = model.__dict__.get("__doc__")  # its own docstring, not an inherited one
    if doc:
        rows += [_plain(" ".join(doc.split())), ""]
    rows += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        annotation, comment = notes[(model.__name__, name)]
        kind = type_text(ast.parse(annotation, mode="eval").body, sections)
        bounds = bounds_text(field)
        kind = f"{kind} ({bounds})" if bounds else kind
        comment = _plain(comment).replace("|", "\\|")
        rows.append(f"| `{name}` | {kind} | {default_text(field)} | {comment} |")
    return [*rows, ""]


if __name__ == "__main__":
    print(render())
