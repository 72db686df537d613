"""Warm step sandboxes (issue 15): Python steps run in sandboxes started before the step, whose
`python` is a fork of a pre-imported interpreter; what a step sees and does is the same as cold.

The executor runs real bash and python in the real bubblewrap sandbox; `decimal` stands in for the ML
stack as the pre-imported module (a cold interpreter does not import it), so `"decimal" in
sys.modules` tells a warm interpreter from a cold one.
"""

from __future__ import annotations

import importlib.machinery
import json
import logging
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlyard.agent.warm import (
    IDLE_ENV,
    SIZE_ENV,
    CoreGauge,
    WarmPool,
    invokes_python,
    runs_script,
    uses_warm,
    waits_for_idle,
    warm_size,
)
from mlyard.protocol import CANCELED, FAILED, SUCCEEDED
from mlyard.sandbox import Sandbox, default_home, server_paths
from tests.agent.conftest import Runner, job, script, step

SECRET = "warm-secret-5e2b"
WARM = "import sys; print('warm' if 'decimal' in sys.modules else 'cold')"


@pytest.fixture
def server_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's data directory (MLYARD_HOME), with a secret no step may read."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.key").write_text(SECRET)
    monkeypatch.setenv("MLYARD_HOME", str(home))
    return home


@pytest.fixture
def sandbox(server_home: Path) -> Sandbox:
    return Sandbox.detect(hidden=server_paths(default_home()))


@pytest.fixture
def pool(tmp_path: Path, sandbox: Sandbox) -> Iterator[WarmPool]:
    work = tmp_path / "work"
    warm = WarmPool(sandbox.hiding(work), work, 2, ["decimal"])
    warm.start()
    assert warm.wait_ready() == 2
    yield warm
    warm.stop()


def run_both(run: Runner, pool: WarmPool, sandbox: Sandbox, *steps: object, **fields: object):  # type: ignore[no-untyped-def]
    """The same job cold (no pool) and warm."""
    cold = run(job(*steps, **fields), sandbox=sandbox)  # type: ignore[arg-type]
    warm = run(job(*steps, **fields), sandbox=sandbox, warm=pool)  # type: ignore[arg-type]
    return cold, warm


def test_python_steps_run_warm_and_other_steps_do_not_take_a_sandbox(
    run: Runner, pool: WarmPool, sandbox: Sandbox
) -> None:
    spec = job(script("echo", "echo hello"), script("py", f'python -c "{WARM}"\npython3 -c "{WARM}"'))
    slot = pool.slot
    outcome, rec = run(spec, sandbox=sandbox, warm=pool)
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert pool.slot == slot and not any(slot.iterdir())  # the job's directory left it; nothing else came in
    assert [line for line in rec.logs["py"] if line in ("warm", "cold")] == ["warm", "warm"]
    assert pool.wait_ready() == 2  # the python step's sandbox was replaced when the job ended


def test_warm_output_exit_codes_and_tracebacks_are_those_of_cold_python(
    run: Runner, pool: WarmPool, sandbox: Sandbox
) -> None:
    text = "\n".join([
        "cat > show.py <<'PY'",
        "import os, sys",
        "print('name', __name__, 'argv', sys.argv[1:], 'file', os.path.basename(__file__))",
        "print('path0', sys.path[0] == os.path.dirname(os.path.abspath(__file__)),",
        "      'pp', os.getcwd() + '/lib' in sys.path)",
        "print('mine', os.environ.get('MINE'), 'secret', os.environ.get('GIVEN'), 'colour', os.environ.get('COLOUR'))",
        "sys.stderr.write('to stderr\\n'); print('after stderr')",
        "sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)",
        "PY",
        "printf 'def test_one():\\n    assert 1\\n' > test_it.py",
        "echo 'raise ValueError(\"boom\")' > bad.py",
        "PYTHONPATH=lib python show.py 0 && echo ok0",
        "python show.py 3 || echo \"exit $?\"",
        "python -c 'import sys; print(sys.argv, sys.path[0] == \"\")' a b",
        "python -m pytest -q -p no:cacheprovider test_it.py 2>&1 | grep -c passed",
        "python bad.py || echo \"bad exit $?\"",
        "python -c 'raise SystemExit(\"message and exit 1\")' || echo \"exit $?\"",
        "python -c 'import sys; print(sys.executable == sys.orig_argv[0] or sys.executable)'",
    ])  # fmt: skip
    steps = (script("py", text, env={"MINE": "mine", "GIVEN": "$(hidden)"}),)
    fields = {"variables": {"colour": "blue"}, "secrets": {"hidden": SECRET}}
    (cold, cold_rec), (warm, warm_rec) = run_both(run, pool, sandbox, *steps, **fields)
    assert cold.result == warm.result == SUCCEEDED, warm_rec.all_text()
    body = [line for line in warm_rec.logs["py"] if "Workspace" not in line and "job7-" not in line]
    cold_body = [line for line in cold_rec.logs["py"] if "Workspace" not in line and "job7-" not in line]
    assert body == cold_body
    text_warm = warm_rec.text("py")
    assert "name __main__ argv ['0'] file show.py" in text_warm
    assert "path0 True pp True" in text_warm
    assert "mine mine secret *** colour blue" in text_warm
    assert "to stderr" in text_warm and "exit 3" in text_warm and "bad exit 1" in text_warm
    assert 'File "' in text_warm and "ValueError: boom" in text_warm and "warm_stub" not in text_warm
    assert "message and exit 1" in text_warm


def test_every_python_process_starts_pristine_and_the_environment_is_cold_s(
    run: Runner, pool: WarmPool, sandbox: Sandbox
) -> None:
    text = "\n".join([
        "python -c 'import decimal; decimal.LEFT_OVER = 1; import os; os.environ[\"LEAK\"] = \"1\"'",
        f'python -c "{WARM}"',
        "python -c 'import decimal, os; print(hasattr(decimal, \"LEFT_OVER\"), os.environ.get(\"LEAK\"))'",
        "python -c 'import os, json; env = dict(os.environ); env.pop(\"_\", None); "
        "env[\"PATH\"] = \":\".join(p for p in env[\"PATH\"].split(\":\") if \"mlyard-warm\" not in p); "
        "print(\"ENV\", json.dumps(env, sort_keys=True))'",
    ])  # fmt: skip
    (cold, cold_rec), (warm, warm_rec) = run_both(run, pool, sandbox, script("py", text))
    assert cold.result == warm.result == SUCCEEDED, warm_rec.all_text()
    assert "warm" in warm_rec.logs["py"] and "cold" in cold_rec.logs["py"]
    assert "False None" in warm_rec.logs["py"]

    def env(rec) -> dict[str, str]:  # type: ignore[no-untyped-def]
        line = next(line for line in rec.logs["py"] if line.startswith("ENV "))
        values = json.loads(line[4:])
        return {key: value for key, value in values.items() if key not in ("MLYARD_JOB_RUN",)}

    cold_env, warm_env = env(cold_rec), env(warm_rec)
    paths = {key for key in cold_env if "job7-" in cold_env[key]}
    assert set(cold_env) == set(warm_env)
    assert {key: value for key, value in cold_env.items() if key not in paths} == {
        key: value for key, value in warm_env.items() if key not in paths
    }


def test_the_template_unit_test_steps_variables_run_warm(run: Runner, pool: WarmPool, sandbox: Sandbox) -> None:
    """The template's unit tests set PYTHONDONTWRITEBYTECODE=1 (the fork sets sys.dont_write_bytecode) after
    UsePythonVersion@0, whose `pythonLocation` variable is PYTHONLOCATION in the environment (no interpreter
    reads it)."""
    code = f"{WARM}; print('no bytecode' if sys.dont_write_bytecode else 'bytecode')"
    text = f'PYTHONLOCATION=/usr PYTHONDONTWRITEBYTECODE=1 python -c "{code}"'
    outcome, rec = run(job(script("py", text)), sandbox=sandbox, warm=pool)
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert [line for line in rec.logs["py"] if line in ("warm", "cold", "no bytecode", "bytecode")] == [
        "warm", "no bytecode"]


def test_what_a_warm_fork_cannot_reproduce_runs_the_real_interpreter(
    run: Runner, pool: WarmPool, sandbox: Sandbox
) -> None:
    text = "\n".join([
        f'python -E -c "{WARM}"',
        f'PYTHONHASHSEED=1 python -c "{WARM}"',
        f'LANG=C python -c "{WARM}"',
        f'python -W error -c "{WARM}"',
        f'echo "{WARM}" | python -',
        "mkdir shadow && touch shadow/decimal.py",
        f'PYTHONPATH=shadow python -c "{WARM}"',
        f'python -u -c "{WARM}"',  # PYTHONUNBUFFERED=1 already: -u changes nothing, warm
    ])  # fmt: skip
    outcome, rec = run(job(script("py", text)), sandbox=sandbox, warm=pool)
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert [line for line in rec.logs["py"] if line in ("warm", "cold")] == ["cold"] * 6 + ["warm"]


def test_the_agents_log_says_how_many_of_the_steps_python_processes_were_forked(
    run: Runner, pool: WarmPool, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Taking a warm sandbox is not all: each Python process of the step is forked from it or, when a fork could
    differ from a new interpreter, started cold. The log says how many of each once the step ended (a sandbox
    whose every process went cold looked warm in the log: that hid a bug for sessions)."""
    caplog.set_level(logging.INFO, logger="mlyard.agent")
    text = "\n".join([f'python -c "{WARM}"', f'python -E -c "{WARM}"', f'python -c "{WARM}"'])
    outcome, rec = run(job(script("py", text), script("none", "echo no python")), sandbox=sandbox, warm=pool)
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert [line for line in rec.logs["py"] if line in ("warm", "cold")] == ["warm", "cold", "warm"]
    said = [r.getMessage() for r in caplog.records if "in a warm sandbox:" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith("the step's Python in a warm sandbox: 2 forked from it, 1 started cold")
    caplog.clear()
    outcome, rec = run(job(script("py", f'python -c "{WARM}"')), sandbox=sandbox, warm=pool)
    said = [r.getMessage() for r in caplog.records if "in a warm sandbox:" in r.getMessage()]
    assert said == ["the step's Python in a warm sandbox: 1 forked from it, none started cold"], rec.all_text()


def test_only_a_module_beside_a_script_of_a_pre_imported_name_sends_it_cold(
    run: Runner, pool: WarmPool, sandbox: Sandbox
) -> None:
    """A script's folder comes first on its sys.path: a module there named like a pre-imported one would shadow
    it, so the real interpreter runs the script. A file of that name that Python cannot import does not: pytest's
    `py.test` next to the interpreter, beside the pre-imported `py` (skops.io imports pytest), sent every console
    script (the creator's `mlyard`) cold."""
    extension = importlib.machinery.EXTENSION_SUFFIXES[0]
    folders = {"plain": "touch plain/decimal.test plain/decimal", "source": "touch source/decimal.py",
               "extension": f"touch extension/decimal{extension}", "package": "mkdir package/decimal"}  # fmt: skip
    code = f"{WARM}\nif sys.argv[1:] == ['import']:\n    import decimal\n"  # the import: a script worth a warm sandbox
    made = [(f"mkdir {folder}", f"printf '%s' {shlex.quote(code)} > {folder}/run.py", make)
            for folder, make in folders.items()]  # fmt: skip
    setup = script("setup", "\n".join(line for lines in made for line in lines))
    steps = script("py", "\n".join(f"python {folder}/run.py" for folder in folders))
    outcome, rec = run(job(setup, steps), sandbox=sandbox, warm=pool)
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert [line for line in rec.logs["py"] if line in ("warm", "cold")] == ["warm", "cold", "cold", "cold"]


def test_a_python_task_runs_warm(run: Runner, pool: WarmPool, sandbox: Sandbox) -> None:
    inputs = {"scriptSource": "inline", "script": WARM.replace("; ", "\n") + "\nimport decimal\nraise SystemExit(4)"}
    spec = job(step("task", "PythonScript@0", inputs=inputs))
    outcome, rec = run(spec, sandbox=sandbox, warm=pool)
    assert outcome.result == FAILED
    assert "warm" in rec.logs["task"] and ("error", "Python exited with code '4'.") in rec.issues("task")


def test_a_warm_step_sees_no_other_job_and_nothing_of_the_server(
    run: Runner, pool: WarmPool, sandbox: Sandbox, tmp_path: Path, server_home: Path
) -> None:
    home = server_home
    other = tmp_path / "work" / "job99-other"
    other.mkdir(parents=True)
    (other / "model.txt").write_text(SECRET)
    code = (f"import os, sys; print('warm' if 'decimal' in sys.modules else 'cold'); "
            f"print(sorted(os.listdir({str(pool.slot)!r})), os.path.exists({str(other)!r}), "
            f"os.path.exists({str(home)!r}) and os.listdir({str(home)!r}))")  # fmt: skip
    first, _ = run(job(script("one", "echo first")), sandbox=sandbox, warm=pool)
    outcome, rec = run(job(script("py", f'python -c "{code}"'), job_id=8), sandbox=sandbox, warm=pool)
    assert first.result == outcome.result == SUCCEEDED, rec.all_text()
    lines = rec.logs["py"]
    assert "warm" in lines
    listing = next(line for line in lines if line.startswith("['"))
    assert listing.startswith("['job8-") and listing.count("job") == 1 and listing.endswith("] False []")
    assert SECRET not in rec.all_text()


def test_cancel_and_timeout_kill_a_warm_step(run: Runner, pool: WarmPool, sandbox: Sandbox) -> None:
    marker = "python -c 'import decimal, time; print(\"sleeping\", flush=True); time.sleep(60)'"
    outcome, rec = run(job(script("slow", marker, timeout_in_minutes=1)), sandbox=sandbox, warm=pool, minute=1.5)
    assert outcome.result == FAILED and "sleeping" in rec.logs["slow"]
    assert any("timed out" in message for _, message in rec.issues("slow"))
    recorder = run.recorder(cancel_when=lambda r: "sleeping" in r.logs.get("slow", []))
    outcome, rec = run(job(script("slow", marker)), recorder, sandbox=sandbox, warm=pool)
    assert outcome.result == CANCELED


def test_which_steps_take_a_warm_sandbox(tmp_path: Path) -> None:
    """Only Python that imports a pre-imported module: a script that imports none of them (the template's
    `python mlops/tools.py`) would spend a sandbox, and its replacement's imports, for nothing."""
    (tmp_path / "tools.py").write_text("import os, subprocess\nfrom packaging import version\n")
    (tmp_path / "train.py").write_text('"""Train."""\nfrom __future__ import annotations\n\nimport mlflow.sklearn\n')
    modules = ["numpy", "mlflow", "sklearn.linear_model"]
    assert not uses_warm("python tools.py test", tmp_path, modules)
    assert not uses_warm("echo 'no python here'\npython -c 'print(1)'", tmp_path, modules)
    assert uses_warm("python tools.py test\npython -u train.py --x 1", tmp_path, modules)
    assert uses_warm("python -m pytest tests/unit", tmp_path, modules)
    assert uses_warm("python3 -c 'import sklearn.linear_model'", tmp_path, modules)
    assert not uses_warm("python missing.py", tmp_path, modules)


def test_the_pool_size_setting_and_which_scripts_are_python() -> None:
    assert warm_size({}) == 1  # on by default: one per agent (their imports wait for an idle core)
    assert warm_size({SIZE_ENV: "0"}) == 0 and warm_size({SIZE_ENV: "3"}) == 3 and warm_size({SIZE_ENV: "99"}) == 8
    assert invokes_python("python -m pytest") and invokes_python("x=1; python3 a.py")
    assert not invokes_python("echo hi") and not invokes_python("pythonic --flag") and not invokes_python("mypython")


def test_no_pool_when_off_or_unsandboxed(tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIZE_ENV, "0")
    assert WarmPool.create(sandbox, tmp_path / "work") is None
    monkeypatch.setenv(SIZE_ENV, "1")
    assert WarmPool.create(Sandbox.none(), tmp_path / "work") is None  # --unsandboxed-steps: every step cold


def test_the_pool_publishes_how_many_are_ready_where_the_server_reads_it(pool: WarmPool) -> None:
    from mlyard.agent.warm import STATUS_FILE
    from mlyard.background.local_agents import WARM_STATUS

    assert STATUS_FILE == WARM_STATUS
    assert (pool.work_root / STATUS_FILE).read_text().strip() == "2"


def test_a_console_script_of_the_interpreter_runs_warm(run: Runner, sandbox: Sandbox, tmp_path: Path) -> None:
    """The creator pipeline's step runs `mlyard infra create-project`: a console script next to the
    interpreter, whose `#!` line names it. With its modules pre-imported it runs as a fork too (through a
    shim of its own), with the output of the real command."""
    work = tmp_path / "work"
    # `py` as in the default pre-imports (skops.io imports pytest, and pytest its `py`): `py.test` lies next to `mlyard`
    warm = WarmPool(sandbox.hiding(work), work, 1, ["decimal", "py", "mlyard.cli.main"])
    assert warm.scripts == ("mlyard",)  # not the console scripts that import none of them
    warm.start()
    try:
        assert warm.wait_ready() == 1
        text = "command -v mlyard\nmlyard --version\nmlyard no-such-command || echo \"exit $?\""
        steps = (script("cli", text, env={"MLYARD_STEP_WARM_DEBUG": "1"}),)
        cold, cold_rec = run(job(*steps), sandbox=sandbox)
        started = warm.started
        outcome, rec = run(job(*steps), sandbox=sandbox, warm=warm)
        assert warm.wait_ready() == 1
    finally:
        warm.stop()
    assert cold.result == outcome.result == SUCCEEDED, rec.all_text()
    assert warm.started == started + 1  # the step took the sandbox (its replacement started)
    lines = rec.logs["cli"]
    assert any(line.endswith("/.mlyard-warm/bin/mlyard") for line in lines), lines  # the shim
    assert not any("cold python" in line for line in lines), lines  # the shim's fork ran it
    assert [line for line in lines if "job7-" not in line and "/bin/mlyard" not in line] == [
        line for line in cold_rec.logs["cli"] if "job7-" not in line and "/bin/mlyard" not in line], lines
    assert any(line.startswith("mlyard ") for line in lines) and "exit 2" in lines


def test_which_commands_are_console_scripts() -> None:
    scripts = ("mlyard",)
    assert runs_script('mlyard infra create-project --repo-name "$REPO_NAME"', scripts)
    assert runs_script("set -x; X=1 mlyard create a", scripts) and runs_script("if true; then mlyard a; fi", scripts)
    assert runs_script("out=$(mlyard whoami)", scripts) and runs_script("true && mlyard a | cat", scripts)
    assert not runs_script("echo mlyard; ls mlyard-x", scripts) and not runs_script("mlyard a", ())


def test_the_gauge_counts_idle_cores_and_our_own_cpu_as_idle(tmp_path: Path) -> None:
    stat = tmp_path / "stat"

    def write(busy: int, idle: int) -> None:  # two cores, ticks since boot: user nice system idle iowait ...
        stat.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0\ncpu1 0 0 0 0 0\nintr 1\n")

    write(1000, 1000)
    gauge = CoreGauge(stat)
    write(1100, 1100)  # 100 of 200 ticks busy: one core of two
    assert gauge.idle() == 1.0 and gauge.cores == 2
    write(1300, 1100)  # both cores busy, one of them by our own process: 100 ticks are 1 s at 100 Hz
    assert gauge.idle(own_seconds=100 / gauge._clock) == 1.0
    write(1500, 1100)
    assert gauge.idle() == 0.0
    assert gauge.idle() is None  # no time passed
    stat.unlink()
    assert gauge.idle() is None  # unknown: the pool does not wait
    assert waits_for_idle({}) and not waits_for_idle({IDLE_ENV: "0"})


class ScriptedGauge(CoreGauge):
    """A gauge whose idle cores the test sets."""

    def __init__(self) -> None:
        self.cores = 2
        self.idle_cores = 0.5  # a step runs on one of the two cores, the server and others use half the other
        self.samples = 0

    def reset(self) -> None:
        pass

    def idle(self, own_seconds: float = 0.0) -> float | None:
        self.samples += 1
        return self.idle_cores


def test_sandboxes_start_and_import_only_on_an_idle_core(tmp_path: Path, sandbox: Sandbox) -> None:
    """No sandbox starts while the machine's cores are busy (less than START_IDLE_CORES idle); one starts beside
    a step that leaves most of the other core idle; one that is importing is paused (SIGSTOP) when the cores become
    busy and resumes when most of a core is idle again; a step never waits for it."""
    import psutil

    work = tmp_path / "work"
    gauge = ScriptedGauge()
    warm = WarmPool(sandbox.hiding(work), work, 1, ["decimal", "pandas"], gauge)
    warm.sample_seconds = 0.01
    warm.start()
    try:
        for _ in range(500):  # a step takes a core: it samples, and starts nothing beside it
            if gauge.samples >= 20:
                break
            time.sleep(0.01)
        assert gauge.samples >= 20 and warm.started == 0 and warm.take() is None
        gauge.idle_cores = 0.7  # the other core mostly idle beside one step: it starts...
        for _ in range(1000):
            if warm.started:
                break
            time.sleep(0.01)
        gauge.idle_cores = 0.0  # ...and the machine is busy again before pandas is imported: paused
        for _ in range(1000):
            if warm.paused:
                break
            time.sleep(0.01)
        assert warm.paused and warm.take() is None and warm.ready() == 0  # the agent claims as one without
        sandbox_processes = psutil.Process(warm._ready[0].pid).children(recursive=True)
        for _ in range(500):
            states = {process.status() for process in sandbox_processes}
            if states == {psutil.STATUS_STOPPED}:
                break
            time.sleep(0.01)
        assert states == {psutil.STATUS_STOPPED}
        gauge.idle_cores = 0.7
        assert warm.wait_ready() == 1 and not warm.paused and warm.ready() == 1  # it claims as a warm agent
    finally:
        warm.stop()


def test_a_pre_import_that_copies_the_environment_sends_every_python_cold(
    run: Runner, sandbox: Sandbox, tmp_path: Path
) -> None:
    """plumbum (imported by copier) copies the whole environment when imported: in a fork, that copy would
    be the sandbox's environment, not the step's (copier would run git without the step's variables)."""
    work = tmp_path / "work"
    warm = WarmPool(sandbox.hiding(work), work, 1, ["decimal", "plumbum"])
    warm.start()
    try:
        assert warm.wait_ready() == 1
        code = "import sys, plumbum; print('warm' if 'decimal' in sys.modules else 'cold', plumbum.local.env['GIVEN'])"
        spec = job(script("py", f'GIVEN=by-the-step python -c "{code}"', env={"MLYARD_STEP_WARM_DEBUG": "1"}))
        outcome, rec = run(spec, sandbox=sandbox, warm=warm)
    finally:
        warm.stop()
    assert outcome.result == SUCCEEDED, rec.all_text()
    assert "cold by-the-step" in rec.logs["py"]
    assert any("plumbum copied the environment" in line for line in rec.logs["py"]), rec.logs["py"]
