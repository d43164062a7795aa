"""Shared pytest configuration."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, settings

from pyipsec.ike.engine import IkeEngine, Output
from tests.support.netns import Topology, cleanup_stale
from tests.support.strongswan import CharonFactory, charon_available

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

CAPTURES = Path(__file__).resolve().parent / "captures"


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """The five real strongSwan 5.9.8 exchanges with key logs (copied from shared/vectors)."""
    return CAPTURES


# --- root test tiers (integration, interop) -----------------------------------------------------
#
# Tests marked `integration` need root and working `ip netns` (plus nft and ping); tests marked
# `interop` also need strongSwan's charon with kernel-libipsec and the vici package. Without a
# prerequisite such a test is skipped with the reason, except under CI=true, where it fails: CI
# must not pass by skipping the root tiers. Install everything with `bash scripts/install-deps.sh`
# and `.venv/bin/pip install -e '.[test]'`.

ROOT_TIER_MARKERS = ("integration", "interop")
_prereq_cache: dict[str, str | None] = {}


def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft", "ping", "unshare", "sysctl"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (bash scripts/install-deps.sh)"
    probe = f"pyiprobe-{os.getpid()}"  # not "pyi-": cleanup_stale() must not race it
    try:
        added = subprocess.run(
            ["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10, check=False
        )
        if added.returncode != 0:
            return f"`ip netns add` does not work here: {added.stderr.strip()}"
        ran = subprocess.run(
            ["ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if ran.returncode != 0:
            return f"`ip netns exec` does not work here: {ran.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` is unusable: {exc}"
    finally:
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True, timeout=10, check=False)
    return None


def root_tier_problem(marker: str) -> str | None:
    """Why tests with ``marker`` cannot run here, or None (cached per session)."""
    if marker not in _prereq_cache:
        problem = _netns_problem() if "netns" not in _prereq_cache else _prereq_cache["netns"]
        _prereq_cache["netns"] = problem
        if problem is None and marker == "interop":
            problem = charon_available()
        _prereq_cache[marker] = problem
    return _prereq_cache[marker]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ROOT_TIER_MARKERS:
        if item.get_closest_marker(marker) is None:
            continue
        problem = root_tier_problem(marker)
        if problem is None:
            continue
        if os.environ.get("CI") == "true":
            pytest.fail(f"{marker} prerequisite missing under CI=true: {problem}", pytrace=False)
        pytest.skip(f"{marker}: {problem}")


# Log files that tests register (charon logs, daemon logs); on failure their paths and last lines
# are attached to the report.
DEBUG_LOGS = pytest.StashKey[list[Path]]()


@pytest.fixture
def debug_logs(request: pytest.FixtureRequest) -> Callable[[Path], None]:
    """``debug_logs(path)`` registers a log file shown (path + tail) if the test fails."""
    paths: list[Path] = request.node.stash.setdefault(DEBUG_LOGS, [])
    return paths.append


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for path in item.stash.get(DEBUG_LOGS, []):
            try:
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-60:])
            except OSError as exc:
                tail = f"(unreadable: {exc})"
            if tail:
                report.sections.append((f"log {path} ({report.when})", tail))
    return report


@pytest.fixture(scope="session")
def stale_netns_cleanup() -> Iterator[None]:
    """Remove `pyi-*` namespaces left by crashed runs (those of live runs are kept).

    For the rest of the session SIGTERM raises KeyboardInterrupt, so that fixture teardown still
    kills the namespaces' processes and removes them (after SIGKILL, the next run's cleanup does).
    """
    cleanup_stale()
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:

        def _on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, _on_sigterm)
    yield
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def topology(stale_netns_cleanup: None) -> Iterator[Topology]:
    """A fresh :class:`tests.support.netns.Topology`, removed with all its processes afterwards."""
    topo = Topology()
    try:
        yield topo
    finally:
        topo.close()


@pytest.fixture
def charon_factory(
    topology: Topology, tmp_path: Path, debug_logs: Callable[[Path], None]
) -> Iterator[CharonFactory]:
    """Start strongSwan peers in the namespaces of ``topology`` (see :class:`CharonFactory`)."""
    factory = CharonFactory(tmp_path / "charon", debug_logs)
    try:
        yield factory
    finally:
        factory.stop_all()


# --- the engine's incremental bookkeeping, checked after every call ------------------------------
#
# IkeEngine looks only at the SAs a call touched (``IkeSa.touch``). After every call of every test
# that uses an engine, ``IkeEngine.audit`` compares that bookkeeping with a full scan: each SA's
# recorded deadline is its real one, nothing is left undrained, the half-open counts are right. A
# change to an SA that forgets to touch it fails here, in whichever test exercises it.
_AUDIT_MAX_SAS = 200  # (a full scan per call: the large scaling tests count work instead)


@pytest.fixture(autouse=True)
def _audit_ike_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    drain = IkeEngine._drain

    def audited(self: IkeEngine) -> Output:
        out = drain(self)
        if self.sa_count <= _AUDIT_MAX_SAS:
            wrong = self.audit()
            assert not wrong, f"engine bookkeeping out of date: {wrong}"
        return out

    monkeypatch.setattr(IkeEngine, "_drain", audited)
