"""Split expression text into tokens. Columns are 1-based."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions.values import parse_version

MAX_LENGTH = 21000  # the limit Azure applies to one expression

_PUNCTUATION = {"(": "lparen", ")": "rparen", "[": "lbracket", "]": "rbracket", ",": "comma", "*": "star"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER_CHUNK = re.compile(r"-?[A-Za-z0-9_.]*")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_KEYWORDS = {"true": True, "false": False, "null": None}
# After these a '.' dereferences; anywhere else it starts a number such as `.5`.
_VALUE_END = {"ident", "literal", "rparen", "rbracket", "star"}


@dataclass(frozen=True)
class Token:
    kind: str  # literal, ident, lparen, rparen, lbracket, rbracket, comma, dot, star, eof
    text: str
    value: Any
    column: int


def shown(expression: str, limit: int = 200) -> str:
    """The expression as quoted in error messages (long ones are cut)."""
    return expression if len(expression) <= limit else expression[: limit - 3] + "..."


def located(what: str, column: int, expression: str) -> ExpressionError:
    """`<what> at column <n> in: <expression>`, the shape of every positioned expression error."""
    return ExpressionError(f"{what} at column {column} in: {shown(expression)}", expression=expression, column=column)


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is {len(text)} characters long; the maximum is {MAX_LENGTH}", expression=text[:80]
        )
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        previous = tokens[-1].kind if tokens else ""
        token = _read_token(text, index, previous)
        tokens.append(token)
        index += len(token.text)
    tokens.append(Token("eof", "", None, len(text) + 1))
    return tokens


def _read_token(text: str, index: int, previous: str) -> Token:
    char, column = text[index], index + 1
    if char in _PUNCTUATION:
        return Token(_PUNCTUATION[char], char, None, column)
    if char == "'":
        return _read_string(text, index)
    if char == "." and (previous in _VALUE_END or not text[index + 1 : index + 2].isdigit()):
        return Token("dot", ".", None, column)
    if char == "-" or char == "." or char.isdigit():
        return _read_number(text, index)
    match = _IDENTIFIER.match(text, index)
    if match:
        word = match.group()
        if previous != "dot" and word.lower() in _KEYWORDS:
            return Token("literal", word, _KEYWORDS[word.lower()], column)
        return Token("ident", word, word, column)
    raise located(f"unexpected character {char!r}", column, text)


def _read_string(text: str, index: int) -> Token:
    position = index + 1
    pieces: list[str] = []
    while True:
        end = text.find("'", position)
        if end < 0:
            raise located("unterminated string (a closing ' is missing)", index + 1, text)
        pieces.append(text[position:end])
        if text.startswith("''", end):
            pieces.append("'")
            position = end + 2
            continue
        return Token("literal", text[index : end + 1], "".join(pieces), index + 1)


def _read_number(text: str, index: int) -> Token:
    match = _NUMBER_CHUNK.match(text, index)
    chunk = match.group() if match else text[index]
    chunk = chunk or text[index]
    column = index + 1
    dots = chunk.count(".")
    if dots in (2, 3) and not chunk.startswith(("-", ".")):
        version = parse_version(chunk)
        if version is not None:
            return Token("literal", chunk, version, column)
    elif _NUMBER.fullmatch(chunk):
        value: int | float = int(chunk) if dots == 0 and len(chunk) < 19 else float(chunk)
        return Token("literal", chunk, value, column)
    raise located(f"unrecognized value '{chunk}'", column, text)
