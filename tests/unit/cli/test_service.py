"""``pyipsec install-service`` and the systemd unit it writes (``pyipsec/data/pyipsec.service``).

The unit is read back as systemd reads it (sections of ``Key=value`` lines) and checked for what
the daemon needs and what the issue asks; ``systemd-analyze verify`` checks it as systemd would
load it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyipsec.cli.main import main
from pyipsec.cli.service import find_executable, render_unit, unit_template
from pyipsec.config.model import Settings


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file: key -> every value it was given, in order."""
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return out


def test_the_template_is_package_data_with_its_placeholders() -> None:
    text = unit_template()
    assert "@PYIPSEC@" in text and "@CONFIG@" in text and "@PROTECT_HOME@" in text


def test_the_unit_is_a_notify_service_with_watchdog_reload_and_hardening() -> None:
    unit = render_unit(["/usr/bin/pyipsec"], Path("/etc/pyipsec/pyipsec.toml"))
    assert "@" not in unit.replace("@system-service", "")
    s = parse_unit(unit)["Service"]
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["ExecStart"] == "/usr/bin/pyipsec daemon /etc/pyipsec/pyipsec.toml"
    assert one["ExecStartPre"] == "/usr/bin/pyipsec check /etc/pyipsec/pyipsec.toml"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(one["WatchdogSec"]) > 0 and one["Restart"] == "on-failure"
    assert one["KillMode"] == "mixed"  # the daemon stops its data plane after the Deletes left
    assert set(one["CapabilityBoundingSet"].split()) == {
        "CAP_NET_ADMIN",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
    }
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert one["ProtectSystem"] == "strict" and one["ProtectHome"] == "yes"
    assert one["NoNewPrivileges"] == "yes" and one["PrivateTmp"] == "yes"
    assert one["DevicePolicy"] == "closed" and one["DeviceAllow"] == "/dev/net/tun rw"
    # the default control socket and user store live in the directories systemd makes writable
    assert Settings().control_socket.parent == Path("/run") / one["RuntimeDirectory"]
    assert Settings().users.parent == Path("/var/lib") / one["StateDirectory"]
    assert parse_unit(unit)["Install"]["WantedBy"] == ["multi-user.target"]


def test_paths_are_quoted_and_escaped_for_systemd() -> None:
    unit = render_unit(["/opt/my venv/bin/python", "-m", "pyipsec"], Path("/etc/pyipsec/100%.toml"))
    s = parse_unit(unit)["Service"]
    assert s["ExecStart"] == ['"/opt/my venv/bin/python" -m pyipsec daemon /etc/pyipsec/100%%.toml']


@pytest.mark.parametrize(
    ("exe", "config", "protect"),
    [
        ("/usr/local/bin/pyipsec", "/etc/pyipsec/pyipsec.toml", "yes"),
        ("/home/ops/venv/bin/pyipsec", "/etc/pyipsec/pyipsec.toml", "read-only"),
        ("/usr/bin/pyipsec", "/root/vpn.toml", "read-only"),
    ],
)
def test_protect_home_is_read_only_when_pyipsec_lives_there(exe: str, config: str, protect: str) -> None:
    assert parse_unit(render_unit([exe], Path(config)))["Service"]["ProtectHome"] == [protect]


def test_a_relative_config_path_is_refused() -> None:
    with pytest.raises(ValueError, match="must be absolute"):
        render_unit(["/usr/bin/pyipsec"], Path("pyipsec.toml"))


def test_install_service_writes_the_unit_and_prints_the_next_steps(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    runner = CliRunner()
    done = runner.invoke(main, ["install-service", "--unit-dir", str(tmp_path), "--config", str(config)])
    assert done.exit_code == 0, done.output
    unit = (tmp_path / "pyipsec.service").read_text()
    assert parse_unit(unit)["Service"]["ExecStart"] == [" ".join([*find_executable(), "daemon", str(config)])]
    assert (tmp_path / "pyipsec.service").stat().st_mode & 0o777 == 0o644
    assert "systemctl daemon-reload" in done.output and "systemctl enable --now pyipsec" in done.output
    assert f"{config} does not exist yet" in done.output
    # the same unit again: fine; a different one: only with --force
    assert (
        runner.invoke(
            main, ["install-service", "--unit-dir", str(tmp_path), "--config", str(config)]
        ).exit_code
        == 0
    )
    other = runner.invoke(
        main, ["install-service", "--unit-dir", str(tmp_path), "--config", "/etc/other.toml"]
    )
    assert other.exit_code == 1 and "exists and differs: use --force" in other.output
    assert (tmp_path / "pyipsec.service").read_text() == unit
    forced = ["install-service", "--unit-dir", str(tmp_path), "--config", "/etc/other.toml", "--force"]
    assert runner.invoke(main, forced).exit_code == 0
    assert "/etc/other.toml" in (tmp_path / "pyipsec.service").read_text()


def test_install_service_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["install-service", "--unit-dir", str(tmp_path), "--dry-run"])
    assert done.exit_code == 0
    assert parse_unit(done.output)["Service"]["Type"] == ["notify"]
    assert list(tmp_path.iterdir()) == []


def test_install_service_into_a_missing_directory_fails_clearly(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["install-service", "--unit-dir", str(tmp_path / "nope")])
    assert done.exit_code == 1
    assert done.output.strip() == f"pyipsec: --unit-dir {tmp_path / 'nope'}: no such directory"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and os.environ.get("CI") != "true",
    reason="systemd-analyze is not installed (scripts/install-deps.sh installs it)",
)
def test_systemd_analyze_verifies_the_installed_unit(tmp_path: Path) -> None:
    config = tmp_path / "pyipsec.toml"
    shutil.copy(Path(__file__).parents[3] / "examples" / "gateway-psk.toml", config)
    cmd = [
        sys.executable,
        "-m",
        "pyipsec",
        "install-service",
        "--unit-dir",
        str(tmp_path),
        "--config",
        str(config),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "pyipsec.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    # systemd reports unknown keys and values it cannot parse on stderr, and fails for missing executables
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr
