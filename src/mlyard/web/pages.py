"""Routes of the web UI: sign-in with a token, then pipelines, runs with their logs, repositories,
models and deployments, and the buttons of a run's life: run a pipeline, cancel, permit, approve or
reject. Everything else changes through the CLI or the API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mlyard.errors import AuthenticationError, MlyardError, NotFound, PermissionDenied
from mlyard.pipelines.predefined import TEAM_PROJECT
from mlyard.protocol import FINAL_STATES, State
from mlyard.services import pipelines, repos, run_logs, runs
from mlyard.services.auth import Principal, authenticate
from mlyard.services.platform import Platform

HERE = Path(__file__).parent
COOKIE = "mlyard_token"
LOG_LIMIT = 512 * 1024  # characters of log shown in a page; the CLI and API give the whole log

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals["State"] = State  # pages compare states with State.WAITING, never a copied string
# No scripts at all, styles from our own stylesheet only, never framed.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


class _SignIn(Exception):
    """The request has no working token: send the browser to the sign-in page."""


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _csrf(platform: Platform, token: str) -> str:
    """The form token of a signed-in browser: an HMAC of its session token under the server's secret key.
    Forms carry it and actions check it (with the Origin header and the SameSite=Strict cookie)."""
    return hmac.new(platform.secret_key(), b"mlyard-web-form:" + token.encode(), hashlib.sha256).hexdigest()


def _render(name: str, code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=code, headers=_HEADERS)


def _principal(request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    if not token:
        raise _SignIn
    addr = request.client.host if request.client else ""
    try:
        principal = authenticate(_platform(request), token, remote_addr=addr)
    except AuthenticationError:
        raise _SignIn from None
    principal.require("repo:read")
    return principal


def page(handler: Callable[..., dict[str, Any]]) -> Callable[[Request], Any]:
    """A page: authenticate from the cookie, run `handler` off the event loop, render its template.

    `handler(request, platform, **path_params)` returns the template context with a "template" key.
    Expected errors become an error page with their HTTP status; no token sends the browser to sign in.
    """

    async def endpoint(request: Request) -> Response:
        principal: Principal | None = None
        try:
            principal = await asyncio.to_thread(_principal, request)
            context = await asyncio.to_thread(handler, request, _platform(request), **request.path_params)
        except _SignIn:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303, headers=_HEADERS)
        except MlyardError as exc:
            return _error_page(exc, principal)
        csrf = _csrf(_platform(request), request.cookies.get(COOKIE, ""))
        return _render(context.pop("template"), user=principal.username, csrf=csrf, **context)

    endpoint.__name__ = endpoint.__qualname__ = handler.__name__.lstrip("_") + "_page"
    return endpoint


def action(handler: Callable[..., str]) -> Callable[[Request], Any]:
    """A button: a POST from one of our pages (same origin, form token) by a signed-in browser.

    `handler(platform, principal, form, **path_params)` does the work through the services (which check
    the scopes) and returns where to go next; expected errors become an error page.
    """

    async def endpoint(request: Request) -> Response:
        principal: Principal | None = None
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        try:
            principal = await asyncio.to_thread(_principal, request)
            expected = _csrf(_platform(request), request.cookies.get(COOKIE, ""))
            if not _same_origin(request) or not hmac.compare_digest(form.get("csrf", ""), expected):
                raise PermissionDenied("this form did not come from a page of this server: reload the page and retry")
            target = await asyncio.to_thread(handler, _platform(request), principal, form, **request.path_params)
        except _SignIn:
            return RedirectResponse("/login", status_code=303, headers=_HEADERS)
        except MlyardError as exc:
            return _error_page(exc, principal)
        return RedirectResponse(target, status_code=303, headers=_HEADERS)

    endpoint.__name__ = endpoint.__qualname__ = handler.__name__.lstrip("_") + "_action"
    return endpoint


def _error_page(exc: MlyardError, principal: Principal | None) -> HTMLResponse:
    """An expected error as a page with its HTTP status (the API's error body, for people)."""
    status = int(getattr(exc, "http_status", 500))
    titles: dict[type[MlyardError], str] = {NotFound: "Not found", PermissionDenied: "Not allowed"}
    title = titles.get(type(exc), "Something went wrong")
    return _render("error.html", status, title=title, message=exc.message, status=status,
                   user=principal.username if principal else "")  # fmt: skip


# -- sign-in ----------------------------------------------------------------------------------------
def _safe_next(value: str | None) -> str:
    """Only a path on this server (no scheme, no `//host`): never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _render("login.html", next=_safe_next(next), user="", error="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/"])[0])
    if not _same_origin(request):
        return _render("login.html", 403, next=target, user="", error="sign-in from another site refused")
    addr = request.client.host if request.client else ""
    try:
        principal = await asyncio.to_thread(authenticate, _platform(request), token, remote_addr=addr)
        principal.require("repo:read")
    except MlyardError as exc:
        return _render("login.html", 401, next=target, user="", error=exc.message)
    response = RedirectResponse(target, status_code=303, headers=_HEADERS)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/")  # fmt: skip
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303, headers=_HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


@router.get("/static/mlyard.css")
def stylesheet() -> FileResponse:
    css = HERE / "static" / "mlyard.css"
    return FileResponse(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


# -- pages ------------------------------------------------------------------------------------------
def _home(request: Request, platform: Platform) -> dict[str, Any]:
    return {
        "template": "home.html",
        "pipelines": pipelines.list_pipelines(platform),
        "runs": runs.list_runs(platform, limit=20),
    }


def _pipeline(request: Request, platform: Platform, name: str) -> dict[str, Any]:
    return {
        "template": "pipeline.html",
        "pipeline": pipelines.show_pipeline(platform, name),
        "runs": runs.list_runs(platform, pipeline=name, limit=100),
    }


def _run(request: Request, platform: Platform, run_id: str) -> dict[str, Any]:
    step = request.query_params.get("step") or None
    doc = runs.show_run(platform, _run_id(run_id))
    log = run_logs.read_text(platform, doc.id, step=step)
    if len(log) > LOG_LIMIT:
        log = f"... (the first {len(log) - LOG_LIMIT} characters are left out: `mlyard runs logs {doc.id}`)\n" + log[
            -LOG_LIMIT:
        ]
    pending = any(job.approval == "pending" for job in doc.jobs)
    return {"template": "run.html", "run": doc, "log": log, "step": step, "final": doc.state in FINAL_STATES,
            "pending_approval": pending,
            # a waiting run changes only when somebody acts: no refresh that would wipe a comment being typed
            "refresh": 3 if doc.state not in FINAL_STATES | {State.WAITING} else None}  # fmt: skip


def _repos(request: Request, platform: Platform) -> dict[str, Any]:
    return {"template": "repos.html", "repos": repos.list_repos(platform)}


def run_link(request: Request, project: str) -> Response:
    """`$(System.CollectionUri)$(System.TeamProject)/_build/results?buildId=$(Build.BuildId)`, Azure DevOps'
    link to a run, goes to the run's page (which asks to sign in, and says when the run does not exist)."""
    build_id = request.query_params.get("buildId", "")
    try:
        if project.lower() != TEAM_PROJECT:
            raise NotFound(f"project {project!r} not found: mlyard has one project, {TEAM_PROJECT!r}")
        if not build_id:
            raise NotFound("no run: the link needs ?buildId=RUN (the run's id, $(Build.BuildId))")
        run_id = _run_id(build_id)
    except NotFound as exc:
        return _error_page(exc, None)
    return RedirectResponse(f"/runs/{run_id}", status_code=302, headers=_HEADERS)


def _run_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:  # ids are 64-bit integers
        raise NotFound(f"run {value!r} not found")
    return int(value)


def _cancel(platform: Platform, principal: Principal, form: dict[str, str], run_id: str) -> str:
    runs.cancel_run(platform, principal, _run_id(run_id))
    return f"/runs/{run_id}"


def _permit(platform: Platform, principal: Principal, form: dict[str, str], run_id: str) -> str:
    runs.permit_run(platform, principal, _run_id(run_id))
    return f"/runs/{run_id}"


def _approve(platform: Platform, principal: Principal, form: dict[str, str], run_id: str) -> str:
    approve = form.get("decision") == "approve"
    runs.decide_approval(platform, principal, _run_id(run_id), approve=approve, comment=form.get("comment", "").strip())
    return f"/runs/{run_id}"


def _queue(platform: Platform, principal: Principal, form: dict[str, str], name: str) -> str:
    queued = runs.queue_manual(platform, principal, name, branch=form.get("branch", "").strip() or None)
    return f"/runs/{queued.id}"


def _docs(request: Request, platform: Platform) -> dict[str, Any]:
    """The REST API's reference, from its OpenAPI schema, grouped by tag."""
    schema = request.app.openapi()
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema", {})
            groups.setdefault((op.get("tags") or ["other"])[0], []).append({
                "method": method.upper(),
                "path": path,
                "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "parameters": [
                    {"name": p["name"], "in": p["in"], "required": p.get("required", False),
                     "type": _type_name(p.get("schema", {}))}
                    for p in op.get("parameters", [])
                ],
                "body": _type_name(body) if body else "",
            })  # fmt: skip
    models = {name: _fields(model) for name, model in schema.get("components", {}).get("schemas", {}).items()}
    return {"template": "docs.html", "groups": sorted(groups.items()), "models": sorted(models.items()),
            "version": schema.get("info", {}).get("version", "")}  # fmt: skip


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type_name(schema.get('items', {}))}]"
    return str(schema.get("type", "any"))


def _fields(model: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(model.get("required", []))
    return [
        {"name": name, "type": _type_name(field), "required": name in required,
         "default": field.get("default"), "description": field.get("description", "")}
        for name, field in model.get("properties", {}).items()
    ]  # fmt: skip


router.add_api_route("/docs", page(_docs), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/runs/{run_id}/cancel", action(_cancel), methods=["POST"])
router.add_api_route("/runs/{run_id}/permit", action(_permit), methods=["POST"])
router.add_api_route("/runs/{run_id}/approval", action(_approve), methods=["POST"])
router.add_api_route("/pipelines/{name}/run", action(_queue), methods=["POST"])
router.add_api_route("/", page(_home), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/pipelines/{name}", page(_pipeline), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/runs/{run_id}", page(_run), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/repos", page(_repos), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/{project}/_build/results", run_link, methods=["GET"])
