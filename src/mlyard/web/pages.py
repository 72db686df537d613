"""Routes of the web UI: sign-in with a token, then pipelines, runs with their logs, repositories,
models and deployments, and the buttons of a run's life: run a pipeline, cancel, permit, approve or
reject. Everything else changes through the CLI or the API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mlyard.errors import AuthenticationError, InvalidInput, MlyardError, NotFound, PermissionDenied
from mlyard.pipelines import Parameter, PipelineError
from mlyard.pipelines.parameters import text
from mlyard.pipelines.predefined import TEAM_PROJECT
from mlyard.protocol import FINAL_STATES, Reason, State
from mlyard.services import jobs, pipelines, repos, run_logs, runs
from mlyard.services.auth import Principal, authenticate
from mlyard.services.platform import Platform
from mlyard.views import PipelineView, duration, folder_tree
from mlyard.web import runlog

HERE = Path(__file__).parent
COOKIE = "mlyard_token"
RUNS_PER_PAGE = 50
MAX_BRANCHES = 500  # branches offered by the Run pipeline form (any other can be typed)
MAX_FILTER = 255  # characters of one filter of the runs list
MAX_LIVE_SECONDS = 300  # a live stream ends after this (the page reloads and follows on)
MAX_LIVE_BYTES = 8 * 1024 * 1024  # bytes one live stream sends before the page reloads
MAX_LIVE_STREAMS = 64  # live streams at once per server; more pages fall back to reloading
LIVE_POLL = 0.5  # seconds between two looks at the run's logs and states

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals["State"] = State  # pages compare states with State.WAITING, never a copied string
_templates.filters["duration"] = duration
# Scripts and styles from our own files only (no inline code), never framed.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
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
        return _render(context.pop("template"), user=principal.username, csrf=csrf, here=request.url.path, **context)

    endpoint.__name__ = endpoint.__qualname__ = handler.__name__.lstrip("_") + "_page"
    return endpoint


def action(handler: Callable[..., str]) -> Callable[[Request], Any]:
    """A button: a POST from one of our pages (same origin, form token) by a signed-in browser.

    `handler(platform, principal, form, **path_params)` does the work through the services (which check
    the scopes) and returns where to go next; expected errors become an error page.
    """

    async def endpoint(request: Request) -> Response:
        principal: Principal | None = None
        body = (await request.body()).decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
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
    titles: dict[type[MlyardError], str] = {NotFound: "Not found", PermissionDenied: "Not allowed",
                                            InvalidInput: "Invalid input"}  # fmt: skip
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


@router.get("/static/mlyard.js")
def script() -> FileResponse:
    js = HERE / "static" / "mlyard.js"
    return FileResponse(js, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


async def not_found(request: Request, status: int = 404) -> HTMLResponse:
    """The page for a web path the server does not have, or a method it does not take there (a link to
    a button's address); the API's paths keep their JSON error."""
    user = ""
    try:
        user = (await asyncio.to_thread(_principal, request)).username
    except (_SignIn, MlyardError):
        user = ""
    if status == 405:
        title = "Not a page"
        message = f"{request.url.path} is a button's address ({request.method} is not taken there): use the button"
    else:
        title, status = "Not found", 404
        message = f"there is no page {request.url.path}: see the pipelines, runs, repositories and models above"
    return _render("error.html", status, title=title, message=message, status=status, user=user)


# -- pages ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FolderRow:
    """A row of the pipelines tree: a folder (pipeline None) or a pipeline, at a depth."""

    depth: int
    label: str
    path: str
    pipeline: PipelineView | None = None


def folder_rows(found: list[PipelineView]) -> list[FolderRow]:
    """Pipelines as a tree by folder, as `mlyard pipelines list` shows it: the root folder is `/`, its
    pipelines first, then each folder (nested with `/`) with its pipelines and sub-folders."""
    children = folder_tree(found)
    rows: list[FolderRow] = []

    def walk(key: str, depth: int) -> None:
        for item in children[key]:
            if isinstance(item, str):
                rows.append(FolderRow(depth, item.rsplit("/", 1)[-1] + "/", "/" + item))
                walk(item, depth + 1)
            else:
                rows.append(FolderRow(depth, item.name, "/" + key, item))

    walk("", 0)
    return rows


def _home(request: Request, platform: Platform) -> dict[str, Any]:
    found, more = runs.search_runs(platform, limit=20)
    return {
        "template": "home.html",
        "rows": folder_rows(pipelines.list_pipelines(platform)),
        "runs": found,
        "more": more,
    }


@dataclass(frozen=True)
class RunFilters:
    """The filters of the runs list, from the page's query string (each bounded; empty: no filter)."""

    pipeline: str = ""
    branch: str = ""
    state: str = ""
    reason: str = ""
    requested_for: str = ""
    before: int | None = None
    per_page: int = RUNS_PER_PAGE

    @classmethod
    def of(cls, request: Request) -> RunFilters:
        q = request.query_params

        def text(name: str) -> str:
            value = (q.get(name) or "").strip()
            if len(value) > MAX_FILTER:
                raise InvalidInput(f"the filter {name} is longer than {MAX_FILTER} characters")
            return value

        state, reason = text("state"), text("reason")
        if state and state not in set(State):
            raise InvalidInput(f"unknown state {state!r}; one of: {', '.join(State)}")
        if reason and reason not in set(Reason):
            raise InvalidInput(f"unknown reason {reason!r}; one of: {', '.join(Reason)}")
        before = text("before")
        if before and (not before.isdigit() or len(before) > 18):
            raise InvalidInput(f"before={before!r}: expected a run id")
        per_page = text("per_page") or str(RUNS_PER_PAGE)
        if not per_page.isdigit() or not 1 <= int(per_page) <= runs.MAX_PAGE:
            raise InvalidInput(f"per_page={per_page!r}: expected a number of runs from 1 to {runs.MAX_PAGE}")
        return cls(text("pipeline"), text("branch"), state, reason, text("requested_for"),
                   int(before) if before else None, int(per_page))  # fmt: skip

    def query(self, **changes: Any) -> str:
        """The query string of these filters with `changes` (a page link, a filter removed)."""
        values = {
            "pipeline": self.pipeline, "branch": self.branch, "state": self.state, "reason": self.reason,
            "requested_for": self.requested_for, "before": self.before,
            "per_page": self.per_page if self.per_page != RUNS_PER_PAGE else None,
        }  # fmt: skip
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    @property
    def active(self) -> bool:
        return any((self.pipeline, self.branch, self.state, self.reason, self.requested_for))


def _runs(request: Request, platform: Platform) -> dict[str, Any]:
    filters = RunFilters.of(request)
    found, more = runs.search_runs(
        platform, pipeline=filters.pipeline or None, branch=filters.branch or None, state=filters.state or None,
        reason=filters.reason or None, requested_for=filters.requested_for or None, before=filters.before,
        limit=filters.per_page,
    )  # fmt: skip
    return {
        "template": "runs.html",
        "runs": found,
        "filters": filters,
        "next": filters.query(before=found[-1].id) if more and found else "",
        "first": filters.query(before=None) if filters.before else "",
        "pipelines": [p.name for p in pipelines.list_pipelines(platform)],
        "states": list(State),
        "reasons": list(Reason),
    }


@dataclass(frozen=True)
class ParameterField:
    """One input of the "Run pipeline" form, from a declared parameter."""

    name: str
    label: str
    control: str  # checkbox | select | number | textarea | text
    value: str = ""
    options: tuple[str, ...] = ()
    required: bool = False  # no default: a value must be given
    type: str = "string"

    @property
    def input_name(self) -> str:
        return f"param.{self.name}"

    @property
    def checked(self) -> bool:
        return self.value == "true"


def parameter_field(parameter: Parameter) -> ParameterField:
    """The form control for a parameter: booleans as checkboxes, `values:` as selects, defaults filled."""
    value = text(parameter.default) if parameter.has_default else ""
    options: tuple[str, ...] = ()
    if parameter.type == "boolean":
        control, value = "checkbox", "true" if parameter.default is True else "false"
    elif parameter.values:
        control, options = "select", tuple(text(v) for v in parameter.values)
    elif parameter.type == "number":
        control = "number"
    elif parameter.type in STRUCTURED:
        control = "textarea"
    else:
        control = "text"
    return ParameterField(parameter.name, parameter.display_name or parameter.name, control, value, options,
                          not parameter.has_default, parameter.type)  # fmt: skip


# Parameter types whose value is YAML (a mapping, a list, steps...): a text area
STRUCTURED = frozenset({"object", "step", "stepList", "job", "jobList", "deployment", "deploymentList", "stage",
                        "stageList"})  # fmt: skip


def _form_fields(platform: Platform, name: str, branch: str | None) -> tuple[list[ParameterField], str]:
    """The form's fields from the pipeline's YAML on `branch`, or why they cannot be read."""
    try:
        return [parameter_field(p) for p in runs.declared_parameters(platform, name, branch)], ""
    except PipelineError as exc:
        return [], "the pipeline's YAML is invalid: " + "; ".join(d.message for d in exc.diagnostics[:5])
    except NotFound as exc:
        return [], exc.message


def _pipeline(request: Request, platform: Platform, name: str) -> dict[str, Any]:
    branch = (request.query_params.get("branch") or "").strip()[:MAX_FILTER]
    view = pipelines.show_pipeline(platform, name)
    fields, problem = _form_fields(platform, name, branch or None)
    found, more = runs.search_runs(platform, pipeline=name, limit=RUNS_PER_PAGE)
    repo = repos.show_repo(platform, view.repo)
    branches = [str(b.get("name", "")) for b in (repo.branches or [])][:MAX_BRANCHES]
    return {
        "template": "pipeline.html",
        "pipeline": view,
        "branches": branches,
        "default_branch": repo.default_branch,
        "fields": fields,
        "form_problem": problem,
        "branch": branch,
        "runs": found,
        "more": more,
        "older": RunFilters(pipeline=name).query(before=found[-1].id) if more and found else "",
    }


@dataclass(frozen=True)
class ArtifactRow:
    name: str
    size: int
    created_at: str


@dataclass(frozen=True)
class FailedTest:
    classname: str
    name: str
    message: str


MAX_FAILED_TESTS = 50  # failing tests listed on a run page (`mlyard runs tests ID` has them all)


def _run(request: Request, platform: Platform, run_id: str) -> dict[str, Any]:
    doc = runs.show_run(platform, _run_id(run_id))
    log = runlog.build(platform, doc)
    pending = any(job.approval == "pending" for stage in doc.stages for job in stage.jobs)
    final = doc.state in FINAL_STATES
    found = jobs.list_artifacts(platform, doc.id) if doc.artifacts else []
    artifacts = [ArtifactRow(str(a["name"]), int(a["size"] or 0), str(a["created_at"])) for a in found]
    failures = (doc.tests.failures if doc.tests else [])[:MAX_FAILED_TESTS]
    failed_tests = [FailedTest(str(f.get("classname", "")), str(f.get("name", "")), str(f.get("message", "")))
                    for f in failures]  # fmt: skip
    step = request.query_params.get("step")  # an older link to one step's log: open that step
    opened = {sec.sid for job in log.jobs for sec in job.sections
              if step and sec.step is not None and step in (sec.step.key, sec.step.name, sec.title)}  # fmt: skip
    return {"template": "run.html", "run": doc, "log": log, "final": final, "pending_approval": pending,
            "artifacts": artifacts, "failed_tests": failed_tests, "opened": opened,
            "stage_node": runlog.stage_node, "job_node": runlog.job_node, "banner": runlog.banner(doc),
            "live": not final,
            # without scripts a page refreshes itself, but not a waiting one (that would wipe a comment being typed)
            "refresh": 5 if not final and doc.state != State.WAITING else None}  # fmt: skip


async def live(request: Request) -> Response:
    """`/runs/ID/live?at=SID.OFFSET,...`: server-sent events for a run page while the run is not final.

    `lines` (a section's new lines), `state` (every node's state and duration, when they change), `reload`
    (the page no longer matches: a job started, the banner changed, the stream's time or size ran out),
    `end` (the run finished). Bounded in time, bytes, lines per event and streams at once.
    """
    try:
        await asyncio.to_thread(_principal, request)
        run_id = _run_id(request.path_params["run_id"])
        await asyncio.to_thread(runs.run_state, _platform(request), run_id)
    except _SignIn:
        return Response("sign in first", status_code=401, headers=_HEADERS)
    except MlyardError as exc:
        return Response(exc.message, status_code=int(getattr(exc, "http_status", 500)), headers=_HEADERS)
    cursors = runlog.parse_cursors(request.query_params.get("at", ""))
    shown = request.query_params.get("b", "")[:10]
    headers = dict(_HEADERS, **{"X-Accel-Buffering": "no"})
    return StreamingResponse(_live(request, run_id, cursors, shown), media_type="text/event-stream", headers=headers)


_live_streams = 0


async def _live(request: Request, run_id: int, cursors: dict[str, int], shown: str) -> AsyncIterator[str]:
    global _live_streams
    if _live_streams >= MAX_LIVE_STREAMS:
        yield runlog.event("busy", {"retry": 5})
        return
    _live_streams += 1
    try:
        async for chunk in _live_events(request, run_id, cursors, shown):
            yield chunk
    finally:
        _live_streams -= 1


async def _live_events(request: Request, run_id: int, cursors: dict[str, int], shown: str) -> AsyncIterator[str]:
    platform = _platform(request)
    follower = await asyncio.to_thread(runlog.Follower.start, platform, run_id, cursors)
    if follower is None:
        yield runlog.event("reload", {"why": "sections"})
        return
    started, sent = time.monotonic(), 0
    last_nodes: dict[str, list[str]] = {}
    yield "retry: 5000\n\n"
    while True:
        doc = await asyncio.to_thread(runs.show_run, platform, run_id)
        for sid, lines in await asyncio.to_thread(follower.poll):
            chunk = runlog.event("lines", {"s": sid, "l": lines})
            sent += len(chunk)
            yield chunk
        now = await asyncio.to_thread(runlog.nodes, platform, doc)
        if now != last_nodes:
            yield runlog.event("state", {"run": str(doc.state), "nodes": now,
                                         "duration": duration(doc.duration_seconds)})  # fmt: skip
            last_nodes = now
        if doc.state in FINAL_STATES:
            yield runlog.event("end", {"state": str(doc.state)})
            return
        if runlog.banner(doc) != shown:  # a permission or an approval to ask for, or no longer
            yield runlog.event("reload", {"why": "banner"})
            return
        if sent > MAX_LIVE_BYTES or time.monotonic() - started > MAX_LIVE_SECONDS:
            yield runlog.event("reload", {"why": "limit"})
            return
        stopping = platform.orchestrator.stop_event if platform.orchestrator is not None else None
        if await request.is_disconnected() or (stopping is not None and stopping.is_set()):
            return  # the browser left, or the server is stopping (the page retries in a few seconds)
        await asyncio.sleep(LIVE_POLL)
        if not await asyncio.to_thread(_same_sections, platform, run_id, follower):
            for sid, lines in await asyncio.to_thread(follower.poll):  # what the old sections still got
                yield runlog.event("lines", {"s": sid, "l": lines})
            yield runlog.event("reload", {"why": "sections"})
            return


def _same_sections(platform: Platform, run_id: int, follower: runlog.Follower) -> bool:

    return {s.path for s in run_logs.sections(platform, run_id) if s.part != "finalize"} == set(follower.files)


def artifact(request: Request) -> Response:
    """An artifact of a run, downloaded by a signed-in browser (a tar.gz, as the API gives it)."""
    try:
        _principal(request)
        run_id = _run_id(request.path_params["run_id"])
        runs.show_run(_platform(request), run_id)
        path = jobs.artifact_file(_platform(request), run_id, request.path_params["name"])
    except _SignIn:
        return RedirectResponse(f"/login?next={quote(request.url.path, safe='')}", status_code=303, headers=_HEADERS)
    except MlyardError as exc:
        return _error_page(exc, None)
    filename = quote(request.path_params["name"], safe="") + ".tar.gz"
    return FileResponse(path, media_type="application/gzip",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
                                 "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})  # fmt: skip


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
    """Run a pipeline from its page's form: the branch and the parameters (a checkbox not sent is false)."""
    branch = form.get("branch", "").strip() or None
    given: dict[str, Any] = {}
    try:
        declared = runs.declared_parameters(platform, name, branch)
    except PipelineError:
        declared = ()  # queue_manual says what is wrong with the file
    for parameter in declared:
        key = f"param.{parameter.name}"
        if parameter.type == "boolean":
            given[parameter.name] = "true" if form.get(key) == "true" else "false"
        elif key in form:
            given[parameter.name] = form[key]
    queued = runs.queue_manual(platform, principal, name, branch=branch, parameters=given)
    return f"/runs/{queued.id}"


def _rerun(platform: Platform, principal: Principal, form: dict[str, str], run_id: str) -> str:
    queued = runs.rerun(platform, principal, _run_id(run_id))
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
router.add_api_route("/runs/{run_id}/rerun", action(_rerun), methods=["POST"])
router.add_api_route("/runs/{run_id}/live", live, methods=["GET"])
router.add_api_route("/runs/{run_id}/artifacts/{name}", artifact, methods=["GET"])
router.add_api_route("/runs", page(_runs), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/", page(_home), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/pipelines/{name}", page(_pipeline), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/runs/{run_id}", page(_run), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/repos", page(_repos), methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/{project}/_build/results", run_link, methods=["GET"])
