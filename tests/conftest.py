from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import schedule
from tests.runtime_proc import ADMIN_KEY, BACKENDS, RuntimeProcess, drop_databases, join_retired
from tests.runtime_thread import RuntimeThread

# With PYTHONDONTWRITEBYTECODE every pytest worker and every runtime or CLI process the tests start compiles
# axme_cli and the test modules again (and pytest rewrites the tests' asserts again): ~6 s of CPU per worker at
# collection, ~0.3 s per process. The processes the session starts (workers included) keep their bytecode in the
# virtual environment instead, out of the source tree.
if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX") \
        and sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(sys.prefix) / "pycache")

# The AXP spec, reference and examples the tests check against: ../shared beside the checkout (or AXME_SHARED_DIR).
SHARED = Path(os.environ.get("AXME_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared")



def pytest_configure(config: pytest.Config) -> None:
    if not (SHARED / "axp-spec").is_dir():
        raise pytest.UsageError(
            f"the tests read the AXP spec and examples from {SHARED}, which is not there: clone this repository "
            "beside the project's shared/ folder, or point AXME_SHARED_DIR at it")
    if os.environ.get("AXME_TEST_CPU"):
        config.pluginmanager.register(CpuAccount(os.environ["AXME_TEST_CPU"]), "axme-cpu-account")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=os.environ.get("AXME_TEST_BACKENDS", ",".join(BACKENDS)),
        help="comma-separated storage backends the runtime tests run on (default: sqlite,postgres)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the `backend` fixture (directly or through `runtime`, `quiet`, ...) runs once per
    backend, or on those of ``@pytest.mark.backends(...)`` only (a test whose outcome no storage decides, such as
    a body refused before any handler reads the store). PostgreSQL must be reachable: a missing server fails the
    run, it is never skipped."""
    if "backend" in metafunc.fixturenames:
        chosen = [b.strip() for b in metafunc.config.getoption("--backends").split(",") if b.strip()]
        unknown = sorted(set(chosen) - set(BACKENDS))
        if unknown:
            raise pytest.UsageError(f"--backends: unknown {unknown}; choose from {list(BACKENDS)}")
        marker = metafunc.definition.get_closest_marker("backends")
        if marker is not None:
            assert set(marker.args) <= set(BACKENDS), marker.args
            chosen = [b for b in chosen if b in marker.args]
        metafunc.parametrize("backend", chosen, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.hookimpl(trylast=True)  # after pytest grouped the tests by their session-scoped backend
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``backends`` mark on one parameter (``pytest.param(..., marks=pytest.mark.backends("sqlite"))``) keeps
    that case to those backends. Tests marked slow run first: on a few workers a 15 s test that starts last leaves
    the others idle until it ends, while at the start the short tests fill in around it; under ``--dist
    worksteal`` each worker starts with its share of them (tests/schedule.py). The order is the same in every
    worker, as `pytest -n` requires."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        marks = [m.args for m in item.iter_markers("backends")]
        (dropped if backend is not None and any(backend not in m for m in marks) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    workerinput = getattr(config, "workerinput", None)
    workers = int(workerinput["workercount"]) if workerinput and workerinput.get("dist") == "worksteal" else 1
    items[:] = schedule.deal(items, workers, _slow_seconds)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's hook, on the controller: a worker's own options say ``--dist no``; tell it how tests are handed
    out, which is how it orders them."""
    node.workerinput["dist"] = node.config.getoption("dist")


def _slow_seconds(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("slow")
    return None if marker is None else float(marker.kwargs.get("seconds", schedule.DEFAULT_SECONDS))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_databases()


@pytest.fixture(scope="session", autouse=True)
def _retired_runtimes_stop() -> Iterator[None]:
    """Set up first, torn down last: the runtimes fixtures retired (``RuntimeThread.retire``) have stopped, and
    cleanly, before the session ends and its databases are dropped."""
    yield
    problems = join_retired()
    assert not problems, problems


# The shared runtimes serve many tests' logins and hostile bodies from this one address; the limits on calls
# without a credential are tested on runtimes of their own (tests/security/test_login.py).
NO_LOGIN_LIMITS = ("--login-rate-limit", "0")


@pytest.fixture(scope="session")
def runtime(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """One `axme dev` for the read-mostly tests of a session (short redelivery for timer tests), in-process."""
    rt = RuntimeThread(tmp_path_factory.mktemp("runtime"),
                        extra_args=["--redelivery-seconds", "0.5", *NO_LOGIN_LIMITS], backend=backend)
    rt.start()
    yield rt
    rt.retire()


@pytest.fixture
def admin(runtime: RuntimeProcess) -> Iterator[httpx.Client]:
    with runtime.client() as client:
        yield client


@pytest.fixture(scope="module")
def quiet(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """A runtime per test module whose redelivery timer does not fire during it, so statuses stay put
    (in-process)."""
    rt = RuntimeThread(tmp_path_factory.mktemp("quiet"),
                        extra_args=["--redelivery-seconds", "600", *NO_LOGIN_LIMITS], backend=backend)
    rt.start()
    yield rt
    rt.retire()


@pytest.fixture
def api(quiet: RuntimeProcess) -> Iterator[httpx.Client]:
    with quiet.client() as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_intent(to_agent: str = "inventory", **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "intent_type": "order.reserve.v1",
        "correlation_id": str(uuid.uuid4()),
        "to_agent": to_agent,
        "payload": {"order_id": "ord_1", "items": [{"sku": "LAPTOP-001", "quantity": 1}]},
    }
    body.update(extra)
    return body


def intent(client: httpx.Client, intent_id: str) -> dict[str, object]:
    """GET /v1/intents/{id}: the intent (200 asserted)."""
    r = client.get(f"/v1/intents/{intent_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["intent"])


def make_agent(client: httpx.Client, name: str) -> tuple[str, str]:
    """Create a service account and a key; returns (address, token)."""
    r = client.post("/v1/service-accounts", json={"name": name})
    assert r.status_code == 200, r.text
    sa = r.json()["service_account"]
    r = client.post(f"/v1/service-accounts/{sa['service_account_id']}/keys", json={})
    assert r.status_code == 200, r.text
    return sa["agent_address"], r.json()["key"]["token"]


__all__ = ["ADMIN_KEY", "SHARED", "make_agent", "new_intent", "unique"]


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Test ids stay the same from one collection to the next (random ids in parameters read as <id>), so the
    parallel workers of `pytest -n` collect the same tests."""
    if isinstance(val, str) and _UUID.search(val):
        return _UUID.sub("<id>", val)
    return None



# Opt-in CPU account: AXME_TEST_CPU=path appends one JSON line per test (and one per worker for its start-up, one
# for its total) with the CPU the test process spent (`time.process_time()`: every thread, so the in-process
# runtimes too) and what its reaped children spent (process runtimes, CLIs), over the test's setup, call and
# teardown. PostgreSQL's server processes are not counted. `python -m tests.cpu_report path` sums it up.
CPU_KINDS = ("runtime", "quiet", "backend", "tmp_path")  # fixtures the report groups the tests by


def _cpu_now() -> tuple[float, float]:
    import resource
    import time

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), children.ru_utime + children.ru_stime


def _wall_now() -> float:
    import time

    return time.monotonic()


class CpuAccount:
    def __init__(self, path: str) -> None:
        self.path = path
        self.last = (0.0, 0.0)  # what the session's teardown took, not counted to the last test

    def write(self, record: dict[str, object]) -> None:
        import json

        record["worker"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(self.path, "a") as out:  # one short append per line: the workers' lines do not interleave
            out.write(json.dumps(record) + "\n")

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        own, children = _cpu_now()  # interpreter start, imports, plugins and collection
        self.write({"startup": True, "cpu": own, "children": children, "tests": len(session.items)})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        own, children = _cpu_now()
        wall = _wall_now()
        yield
        own2, children2 = _cpu_now()
        wall = _wall_now() - wall
        names = getattr(item, "fixturenames", ())
        own2, children2 = own2 - self.last[0], children2 - self.last[1]
        self.write({"nodeid": item.nodeid, "file": item.nodeid.split("::", 1)[0], "cpu": round(own2 - own, 4),
                    "children": round(children2 - children, 4), "wall": round(wall, 4),
                    "end": round(_wall_now(), 3), "fixtures": [k for k in CPU_KINDS if k in names]})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        """The last test's teardown ends the session's fixtures too: the shared runtimes, and the retired ones
        joined (a process runtime's CPU is counted when it is reaped, there), so it is a line of its own."""
        own, children = _cpu_now()
        yield
        if nextitem is None:
            own2, children2 = _cpu_now()
            self.last = (own2 - own, children2 - children)
            self.write({"session_teardown": True, "cpu": round(self.last[0], 4), "children": round(self.last[1], 4)})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        own, children = _cpu_now()  # retired runtimes joined, databases dropped: the whole process
        self.write({"total": True, "cpu": own, "children": children})
