"""A README as safe HTML: markdown-it-py (CommonMark and tables) with raw HTML disabled, so every `<` of
the file is escaped; markdown-it's own link check drops `javascript:`, `vbscript:`, `file:` and `data:`
(but images) links. Relative links and images point into the repository's file browser at the same
revision; the pages' Content-Security-Policy (img-src 'self') keeps images from other sites out."""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import quote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup

MAX_MARKDOWN = 256 * 1024


def render(text: str, *, repo: str, rev: str, folder: str) -> Markup:
    """Safe HTML of `text` (a README in `folder` of `repo` at `rev`); text beyond MAX_MARKDOWN is left out."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    # markdown-it binds a render rule to its renderer: `renderer` is that RendererHTML
    def link(renderer: RendererHTML, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        href = token.attrGet("href")
        if isinstance(href, str):
            token.attrSet("href", _inside(href, repo=repo, rev=rev, folder=folder, view="blob"))
        return renderer.renderToken(tokens, idx, options, env)

    def image(renderer: RendererHTML, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src = token.attrGet("src")
        if isinstance(src, str):
            token.attrSet("src", _inside(src, repo=repo, rev=rev, folder=folder, view="raw"))
        token.attrSet("alt", renderer.renderInlineAsText(token.children or [], options, env))
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link)
    md.add_render_rule("image", image)
    return Markup(md.render(text[:MAX_MARKDOWN]))  # every character of the file was escaped by markdown-it


def _inside(target: str, *, repo: str, rev: str, folder: str, view: str) -> str:
    """A relative link as a page of the file browser; absolute and anchor links as they are."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith(("/", "#")) or not parts.path:
        return target
    joined = posixpath.normpath(posixpath.join(folder, parts.path))
    if joined.startswith("..") or joined.startswith("/"):
        return "#"
    path = "" if joined == "." else joined
    page = "tree" if view == "blob" and target.endswith("/") else view
    return f"/repos/{quote(repo)}/{page}?ref={quote(rev, safe='')}&path={quote(path, safe='/')}"
