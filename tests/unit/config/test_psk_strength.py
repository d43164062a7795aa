"""Short pre-shared keys are refused at config load and by ``pyipsec check`` (RELIABILITY.md C2),
unless every connection that uses the key opts in with ``insecure_psk = true``."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from pyipsec.cli.main import main
from pyipsec.config.load import ConfigErrors, read_config
from pyipsec.config.model import Config, IkeSecret
from pyipsec.config.values import MIN_PSK_BYTES, MIN_PSK_CHARS, psk_weakness

LONG = "a sufficiently long pre-shared key"


@pytest.mark.parametrize(
    ("raw", "key", "weak"),
    [
        ({"secret": "x" * (MIN_PSK_CHARS - 1)}, b"x" * (MIN_PSK_CHARS - 1), True),
        ({"secret": "x" * MIN_PSK_CHARS}, b"x" * MIN_PSK_CHARS, False),
        # characters, not UTF-8 bytes: 19 two-byte characters are still 19
        ({"secret": "ü" * (MIN_PSK_CHARS - 1)}, ("ü" * (MIN_PSK_CHARS - 1)).encode(), True),
        ({"secret": "0x" + "ab" * (MIN_PSK_BYTES - 1)}, b"\xab" * (MIN_PSK_BYTES - 1), True),
        ({"secret": "0X" + "ab" * MIN_PSK_BYTES}, b"\xab" * MIN_PSK_BYTES, False),
        (
            {"secret": "0s" + base64.b64encode(b"k" * (MIN_PSK_BYTES - 1)).decode()},
            b"k" * (MIN_PSK_BYTES - 1),
            True,
        ),
        ({"secret": "0s" + base64.b64encode(b"k" * MIN_PSK_BYTES).decode()}, b"k" * MIN_PSK_BYTES, False),
        # from a secret_file: text counts characters, binary content counts bytes
        ({"secret_file": "f"}, b"t" * (MIN_PSK_CHARS - 1), True),
        ({"secret_file": "f"}, b"t" * MIN_PSK_CHARS, False),
        ({"secret_file": "f"}, b"\x00\xff" * (MIN_PSK_BYTES // 2), False),
        ({"secret_file": "f"}, b"\x00\xff" * (MIN_PSK_BYTES // 2 - 1), True),
    ],
)
def test_psk_weakness(raw: dict[str, str], key: bytes, weak: bool) -> None:
    reason = psk_weakness(raw, key)
    assert bool(reason) is weak
    if weak:
        assert "too short" in reason and (str(MIN_PSK_CHARS) in reason or str(MIN_PSK_BYTES) in reason)


def two_connections(secret: dict[str, object], **office: object) -> dict[str, object]:
    """``office`` and ``branch``, both PSK, sharing one id-less ``[secrets.ike-shared]``."""

    def conn(peer: str) -> dict[str, object]:
        return {
            "remote_addrs": ["198.51.100.2"],
            "local": {"auth": "psk", "id": "gw.example.org"},
            "remote": {"auth": "psk", "id": peer},
        }

    return {
        "connections": {
            "office": {**conn("office.example.org"), **office},
            "branch": conn("branch.example.org"),
        },
        "secrets": {"ike-shared": secret},
    }


def errors(data: dict[str, object], **context: object) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data, context=context or None)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_a_short_psk_is_an_error_naming_its_key_and_the_rule() -> None:
    [(key, message)] = errors(two_connections({"secret": "pw123"}))
    assert key == "secrets.ike-shared.secret"
    assert message.startswith("pre-shared key of 5 characters is too short: at least 20 characters")
    assert "insecure_psk = true on connections.office, connections.branch" in message
    assert "pw123" not in message


def test_insecure_psk_must_be_set_by_every_connection_using_the_key() -> None:
    data = two_connections({"secret": "pw123"}, insecure_psk=True)
    [(key, message)] = errors(data)
    assert key == "secrets.ike-shared.secret"
    assert "on connections.branch to accept it" in message and "office" not in message
    connections = data["connections"]
    assert isinstance(connections, dict)
    connections["branch"]["insecure_psk"] = True
    config = Config.model_validate(data)
    secret = config.secrets["ike-shared"]
    assert isinstance(secret, IkeSecret) and secret.secret == b"pw123" and secret.weakness
    assert config.connections["office"].insecure_psk and config.connections["branch"].insecure_psk


def test_the_opt_in_follows_the_ids_the_key_is_bound_to() -> None:
    # a short key bound to office's peer only needs office's opt-in; branch has a long key
    data = two_connections({"id": "office.example.org", "secret": "pw123"}, insecure_psk=True)
    secrets = data["secrets"]
    assert isinstance(secrets, dict)
    secrets["ike-branch"] = {"id": "branch.example.org", "secret": LONG}
    Config.model_validate(copy.deepcopy(data))
    # the same short key given to branch's peer as well: branch did not opt in
    secrets["ike-shared"]["id"] = ["office.example.org", "branch.example.org"]
    [(key, message)] = errors(data)
    assert key == "secrets.ike-shared.secret" and "on connections.branch" in message


def test_a_short_psk_no_connection_uses_is_refused() -> None:
    data = two_connections({"secret": LONG})
    secrets = data["secrets"]
    assert isinstance(secrets, dict)
    secrets["ike-spare"] = {"id": "nobody.example.org", "secret": "0x0102"}
    [(key, message)] = errors(data)
    assert key == "secrets.ike-spare.secret"
    assert message.startswith("pre-shared key of 2 bytes is too short: 16 random bytes are needed")
    assert "on the connection that uses it" in message


def test_hex_and_base64_keys_count_bytes() -> None:
    Config.model_validate(two_connections({"secret": "0x" + "5a" * 16}))
    Config.model_validate(two_connections({"secret": "0s" + base64.b64encode(bytes(range(16))).decode()}))
    [(_, message)] = errors(two_connections({"secret": "0x" + "5a" * 15}))
    assert message.startswith("pre-shared key of 15 bytes is too short")


def test_a_short_psk_file_names_secret_file(tmp_path: Path) -> None:
    (tmp_path / "office.psk").write_text("short\n")
    [(key, message)] = errors(two_connections({"secret_file": "office.psk"}), base_dir=tmp_path)
    assert key == "secrets.ike-shared.secret_file"
    assert "5 characters is too short" in message


GATEWAY = """
[connections.office]
remote_addrs = ["198.51.100.2"]
{optin}
  [connections.office.local]
  auth = "psk"
  id = "gw.example.org"
  [connections.office.remote]
  auth = "psk"
  id = "peer.example.org"

[secrets.ike-office]
id = ["gw.example.org"]
secret = "abc"
"""


def test_config_load_and_check_refuse_a_short_psk(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(GATEWAY.format(optin=""))
    with pytest.raises(ConfigErrors) as info:
        read_config(path)
    [issue] = info.value.errors
    assert issue.key == "secrets.ike-office.secret" and "3 characters is too short" in issue.message
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1
    assert "secrets.ike-office.secret" in result.stderr and "insecure_psk = true" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    # the explicit opt-in: valid, with a warning that stays visible
    path.write_text(GATEWAY.format(optin="insecure_psk = true"))
    [warning] = read_config(path).warnings
    assert warning.key == "secrets.ike-office.secret"
    assert warning.message.startswith("pre-shared key of 3 characters is too short")
    assert warning.message.endswith("accepted because connections.office sets insecure_psk = true")
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "insecure_psk" in result.stderr and "abc" not in result.output + result.stderr
