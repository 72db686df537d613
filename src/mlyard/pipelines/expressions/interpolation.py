"""Compile-time template expressions (`${{ expr }}`) inside YAML strings, and `$[ expr ]` detection."""

from __future__ import annotations

from typing import Any

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions.context import ExpressionContext
from mlyard.pipelines.expressions.evaluator import evaluate
from mlyard.pipelines.expressions.values import kind_of, try_to_string

OPEN = "${{"
CLOSE = "}}"


def interpolate(text: str, context: ExpressionContext) -> Any:
    """Expand every `${{ expr }}` in `text`.

    A string that is (apart from surrounding white space) exactly one `${{ expr }}` gives the typed value
    of the expression. Otherwise each expression is replaced by its string form. A string without `${{`
    is returned unchanged. Quotes inside an expression are respected: `${{ 'a }} b' }}` is one expression.
    """
    if not isinstance(text, str) or OPEN not in text:
        return text
    pieces = split_template(text)
    expressions = [body for is_expression, body in pieces if is_expression]
    literals = [body for is_expression, body in pieces if not is_expression]
    if len(expressions) == 1 and not "".join(literals).strip():
        return evaluate(expressions[0].strip(), context)
    out: list[str] = []
    for is_expression, body in pieces:
        if not is_expression:
            out.append(body)
            continue
        value = evaluate(body.strip(), context)
        shown = try_to_string(value)
        if shown is None:
            raise ExpressionError(
                f"cannot insert {kind_of(value)} into a string (use join() or convertToJson()) "
                f"at column 1 in: {body.strip()}",
                expression=body.strip(),
                column=1,
            )
        out.append(shown)
    return "".join(out)


def split_template(text: str) -> list[tuple[bool, str]]:
    """Cut `text` into (is_expression, text) pieces; expression pieces are the text inside `${{ }}`."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    while True:
        start = text.find(OPEN, position)
        if start < 0:
            pieces.append((False, text[position:]))
            return [piece for piece in pieces if piece[1] or piece[0]]
        pieces.append((False, text[position:start]))
        end = _closing(text, start + len(OPEN))
        if end < 0:
            raise ExpressionError(
                f"expected '}}}}' to close the expression that starts at column {start + 1} in: {text}",
                expression=text,
                column=start + 1,
            )
        pieces.append((True, text[start + len(OPEN) : end]))
        position = end + len(CLOSE)


def _closing(text: str, position: int) -> int:
    """Index of the `}}` that closes an expression body starting at `position` (-1 if none)."""
    in_string = False
    while position < len(text):
        char = text[position]
        if char == "'":
            in_string = not in_string
        elif not in_string and text.startswith(CLOSE, position):
            return position
        position += 1
    return -1


def is_runtime_expression(text: str) -> bool:
    """True for a value of the form `$[ expr ]` (it must take up the whole value)."""
    if not isinstance(text, str):
        return False
    stripped = text.strip()
    return stripped.startswith("$[") and stripped.endswith("]")
