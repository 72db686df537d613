"""Parse expression text into a syntax tree (cached per text)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from mlyard.pipelines.errors import ExpressionError
from mlyard.pipelines.expressions.ast import FunctionCall, Index, Literal, NamedValue, Node, Wildcard
from mlyard.pipelines.expressions.functions import arity_text, lookup_function, supported_names
from mlyard.pipelines.expressions.lexer import Token, located, shown, tokenize

MAX_DEPTH = 50  # the nesting limit Azure applies


def parse_expression(text: str) -> Node:
    """Parse a bare expression (no `${{ }}` or `$[ ]` wrapper); raises ExpressionError with a column."""
    return _parse_cached(text)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Node:
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0

    def parse(self) -> Node:
        node = self.expression(1)
        token = self.peek()
        if token.kind != "eof":
            raise located(f"unexpected {_shown(token)} after the end of the expression", token.column, self.text)
        return replace(node, source=self.text)

    def peek(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.tokens[self.position]
        if token.kind != "eof":
            self.position += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise located(f"expected {what}", token.column, self.text)
        return self.advance()

    def expression(self, depth: int) -> Node:
        token = self.advance()
        self.check_depth(depth, token)
        node: Node
        if token.kind == "literal":
            node = Literal(token.value, token.column)
        elif token.kind == "ident" and self.peek().kind == "lparen":
            node = self.call(token, depth)
        elif token.kind == "ident":
            node = NamedValue(token.text, token.column)
        elif token.kind == "eof":
            raise located("expected a value", token.column, self.text)
        else:
            raise located(f"expected a value but found {_shown(token)}", token.column, self.text)
        return self.postfix(node, depth)

    def check_depth(self, depth: int, token: Token) -> None:
        if depth > MAX_DEPTH:
            raise located(f"expression is nested more than {MAX_DEPTH} levels deep", token.column, self.text)

    def postfix(self, node: Node, depth: int) -> Node:
        while True:
            token = self.peek()
            if token.kind in ("dot", "lbracket"):
                depth += 1  # every dereference nests the tree one level deeper
                self.check_depth(depth, token)
            if token.kind == "dot":
                self.advance()
                name = self.advance()
                if name.kind == "star":
                    node = Wildcard(node, node.column)
                elif name.kind == "ident":
                    node = Index(node, Literal(name.text, name.column), node.column)
                else:
                    raise located("expected a property name after '.'", name.column, self.text)
            elif token.kind == "lbracket":
                self.advance()
                if self.peek().kind == "star":
                    self.advance()
                    node = Wildcard(node, node.column)
                else:
                    node = Index(node, self.expression(depth + 1), node.column)
                self.expect("rbracket", "']'")
            else:
                return node

    def call(self, name: Token, depth: int) -> FunctionCall:
        spec = lookup_function(name.text)
        if spec is None:
            raise ExpressionError(
                f"unknown function '{name.text}' at column {name.column} in: {shown(self.text)}; "
                f"supported: {', '.join(supported_names())}",
                expression=self.text,
                column=name.column,
            )
        self.advance()  # (
        args: list[Node] = []
        if self.peek().kind == "rparen":
            self.advance()
        else:
            while True:
                args.append(self.expression(depth + 1))
                token = self.advance()
                if token.kind == "rparen":
                    break
                if token.kind != "comma":
                    what = "')'" if token.kind == "eof" else "',' or ')'"
                    raise located(f"expected {what}", token.column, self.text)
        if not spec.min_args <= len(args) <= (spec.max_args if spec.max_args >= 0 else len(args)):
            raise located(f"{spec.name}() takes {arity_text(spec)}, got {len(args)}", name.column, self.text)
        return FunctionCall(spec.name, tuple(args), name.column)


def _shown(token: Token) -> str:
    return "the end of the expression" if token.kind == "eof" else f"'{token.text}'"
