"""The web UI's repositories: the files of any branch, tag or commit with the folder's README rendered, a
file (text shown, binary or large ones offered for download), commits (of the branch or of one path), one
commit's changed files, branches, tags and the push events. Revisions and paths are query parameters
(`?ref=main&path=src/app.py`, as Azure Repos keeps them out of the path), checked by
mlyard.services.repo_browse."""

from __future__ import annotations

import asyncio
import mimetypes
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mlyard.errors import MlyardError
from mlyard.git.browse import MAX_LOG
from mlyard.services import pipelines, repo_browse
from mlyard.services.platform import Platform
from mlyard.web import markdown
from mlyard.web.pages import _HEADERS, _error_page, _principal, _SignIn, page

router = APIRouter(include_in_schema=False)
MAX_PAGE = 1000  # pages of commits
_INLINE_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}  # never SVG: it can hold scripts


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each folder leading to `path`."""
    parts = path.split("/") if path else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _base(place: repo_browse.Place, path: str) -> dict[str, Any]:
    return {"repo": place.repo, "ref": place.rev, "commit": place.commit, "path": path, "crumbs": _crumbs(path),
            "is_branch": place.is_branch}  # fmt: skip


def _tree(request: Request, platform: Platform, name: str) -> dict[str, Any]:
    place = repo_browse.open_at(platform, name, request.query_params.get("ref"))
    path = repo_browse.check_path(request.query_params.get("path", ""))
    entries, cut = repo_browse.folder(place, path)
    found = repo_browse.readme(place, entries)
    readme_html = (
        markdown.render(found.text or "", repo=name, rev=place.rev, folder=path)
        if found is not None and found.path.lower().endswith((".md", ".markdown"))
        else None
    )
    last = repo_browse.commits(place, path, 1)[:1]
    return {"template": "repo_tree.html", **_base(place, path), "entries": entries, "cut": cut, "readme": found,
            "readme_html": readme_html, "last": last[0] if last else None,
            "pipelines": pipelines.list_pipelines(platform, repo=name) if not path else [],
            "events": repo_browse.push_events(platform, name) if not path else []}  # fmt: skip


def _blob(request: Request, platform: Platform, name: str) -> dict[str, Any]:
    place = repo_browse.open_at(platform, name, request.query_params.get("ref"))
    path = repo_browse.check_path(request.query_params.get("path", ""))
    found = repo_browse.read(place, path)
    rendered = None
    plain = request.query_params.get("plain") == "1"
    if found.text is not None and path.lower().endswith((".md", ".markdown")) and not plain:
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        rendered = markdown.render(found.text, repo=name, rev=place.rev, folder=folder)
    lines = found.text.splitlines() if found.text is not None else []
    return {"template": "repo_blob.html", **_base(place, path), "file": found, "lines": lines, "rendered": rendered,
            "limit": repo_browse.MAX_FILE}  # fmt: skip


def _commits(request: Request, platform: Platform, name: str) -> dict[str, Any]:
    place = repo_browse.open_at(platform, name, request.query_params.get("ref"))
    path = repo_browse.check_path(request.query_params.get("path", ""))
    text = request.query_params.get("page", "1")
    number = int(text) if text.isdigit() and 1 <= int(text) <= MAX_PAGE else 1
    found = repo_browse.commits(place, path, number)
    return {"template": "repo_commits.html", **_base(place, path), "commits": found, "page": number,
            "more": len(found) == MAX_LOG and number < MAX_PAGE}  # fmt: skip


def _commit(request: Request, platform: Platform, name: str, sha: str) -> dict[str, Any]:
    head, changes, message = repo_browse.commit(platform, name, sha)
    place = repo_browse.open_at(platform, name, head.sha)
    return {"template": "repo_commit.html", **_base(place, ""), "head": head, "changes": changes, "message": message}


def _branches(request: Request, platform: Platform, name: str) -> dict[str, Any]:
    place = repo_browse.open_at(platform, name, None)
    return {"template": "repo_branches.html", **_base(place, ""), "events": repo_browse.push_events(platform, name)}


async def raw(request: Request) -> Response:
    """A file's bytes as a download (raster images inline, for a README's pictures)."""
    platform = request.app.state.platform
    name = request.path_params["name"]
    try:
        await asyncio.to_thread(_principal, request)
        place = await asyncio.to_thread(repo_browse.open_at, platform, name, request.query_params.get("ref"))
        filename, data = await asyncio.to_thread(repo_browse.download, place, request.query_params.get("path", ""))
    except _SignIn:
        target = f"/login?next={quote(str(request.url.path), safe='')}"
        return Response(status_code=303, headers={**_HEADERS, "location": target})
    except MlyardError as exc:
        return _error_page(exc, None)
    kind = mimetypes.guess_type(filename)[0] or ""
    inline = kind in _INLINE_IMAGES
    disposition = "inline" if inline else f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
    return Response(data, media_type=kind if inline else "application/octet-stream",
                    headers={**_HEADERS, "Content-Disposition": disposition})  # fmt: skip


router.add_api_route("/repos/{name}", page(_tree), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/repos/{name}/tree", page(_tree), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/repos/{name}/blob", page(_blob), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/repos/{name}/raw", raw, methods=["GET"])
router.add_api_route("/repos/{name}/commits", page(_commits), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/repos/{name}/commit/{sha}", page(_commit), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/repos/{name}/branches", page(_branches), methods=["GET"], response_class=HTMLResponse)
