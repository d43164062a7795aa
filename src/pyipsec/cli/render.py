"""Human (rich) and ``--json`` renderings for the CLI.

Theory of operation: every command builds its result once as data and renders it either as
text for a terminal or as JSON for scripts, never mixing the two. Text is built from
:class:`rich.text.Text` pieces, never from markup strings, so user data such as the traffic
selector ``10.0.0.0/8[tcp/443]`` is printed verbatim. Secrets are never rendered: a secret
appears by name, kind and identities only.

The ``check`` summary follows ``swanctl --list-conns`` so a strongSwan admin can read it:
one block per connection with its addresses, IKE proposals, each authentication round and
each child's selectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from rich.console import Group
from rich.text import Text

from pyipsec.config.ids import Identity
from pyipsec.config.load import ConfigIssue, LoadedConfig
from pyipsec.config.model import (
    Auth,
    AuthKind,
    Child,
    Config,
    Connection,
    EapSecret,
    IkeSecret,
    Pool,
    PrivateKeySecret,
)
from pyipsec.control.protocol import JsonValue
from pyipsec.daemon.eapusers import eap_user_name
from pyipsec.ike.proposal import ProposalSpec
from pyipsec.ike.proposal_text import format_proposal
from pyipsec.store.base import mask_dsn

__all__ = [
    "JsonValue",
    "check_errors_json",
    "check_json",
    "config_summary",
    "issue_json",
    "issues_text",
]


_AUTH_LABEL = {
    AuthKind.PUBKEY: "public key",
    AuthKind.RSA: "RSA signature",
    AuthKind.ECDSA: "ECDSA signature",
    AuthKind.PSK: "pre-shared key",
    AuthKind.EAP: "EAP",
    AuthKind.EAP_MSCHAPV2: "EAP-MSCHAPv2",
    AuthKind.EAP_TLS: "EAP-TLS",
    AuthKind.EAP_RADIUS: "EAP-RADIUS",
}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _line(indent: int, label: str, value: str = "", *, style: str = "") -> Text:
    text = Text("  " * indent)
    text.append(label, style=style or "bold")
    if value:
        text.append(" " + value)
    return text


def _proposals(specs: Sequence[ProposalSpec]) -> str:
    return ", ".join(format_proposal(spec) for spec in specs)


def _joined(items: Iterable[object]) -> str:
    return ", ".join(str(item) for item in items)


def _auth_lines(side: str, auth: Auth) -> list[Text]:
    lines = [_line(1, f"{side} {_AUTH_LABEL[auth.auth]} authentication:")]
    lines.append(_line(2, "id:", str(auth.id), style="dim"))
    if auth.eap_id is not None:
        lines.append(_line(2, "eap_id:", str(auth.eap_id), style="dim"))
    for key in ("certs", "cacerts", "pubkeys"):
        files = getattr(auth, key)
        if files:
            lines.append(_line(2, f"{key}:", _joined(files), style="dim"))
    if side.startswith("remote") and (auth.cacerts or auth.auth.is_pubkey):
        lines.append(_line(2, "revocation:", auth.revocation.value, style="dim"))
    return lines


def _child_lines(name: str, child: Child) -> list[Text]:
    head = f"{child.mode.value.upper()}, rekeying every {child.rekey_time}s, life {child.life_time}s"
    if child.start_action.value != "none":
        head += f", start_action {child.start_action.value}"
    return [
        _line(1, f"{name}:", head, style="bold cyan"),
        _line(2, "local: ", _joined(child.local_ts), style="dim"),
        _line(2, "remote:", _joined(child.remote_ts), style="dim"),
        _line(2, "esp_proposals:", _proposals(child.esp_proposals), style="dim"),
    ]


def _connection_lines(name: str, conn: Connection) -> list[Text]:
    head = f"IKEv2, rekeying every {conn.rekey_time}s"
    head += f", reauthentication every {conn.reauth_time}s" if conn.reauth_time else ", no reauthentication"
    if conn.dpd_delay:
        head += f", dpd delay {conn.dpd_delay}s"
    lines = [
        _line(0, f"{name}:", head, style="bold green"),
        _line(1, "local: ", f"{_joined(conn.local_addrs)} port {conn.local_port}", style="dim"),
        _line(1, "remote:", f"{_joined(conn.remote_addrs)} port {conn.remote_port}", style="dim"),
        _line(1, "proposals:", _proposals(conn.proposals), style="dim"),
    ]
    if conn.pools:
        lines.append(_line(1, "pools:", _joined(conn.pools), style="dim"))
    if conn.vips:
        lines.append(_line(1, "vips:", _joined(conn.vips), style="dim"))
    for side, rounds in (("local", conn.local_rounds), ("remote", conn.remote_rounds)):
        for number, auth in enumerate(rounds, 1):
            lines += _auth_lines(side if len(rounds) == 1 else f"{side}-{number}", auth)
    for child_name, child in conn.children.items():
        lines += _child_lines(child_name, child)
    return lines


def _pool_text(pool: Pool) -> str:
    text = (
        f"{pool.addrs[0]}-{pool.addrs[1]} ({_plural(pool.size, 'address').replace('addresss', 'addresses')})"
    )
    if pool.dns:
        text += f", dns {_joined(pool.dns)}"
    return text


def _ids(ids: Sequence[Identity]) -> str:
    return _joined(ids) if ids else "any identity"


def _secret_text(secret: IkeSecret | EapSecret | PrivateKeySecret) -> str:
    if isinstance(secret, PrivateKeySecret):
        return f"private key {secret.file}" + (" (encrypted)" if secret.secret is not None else "")
    kind = "IKE pre-shared key" if isinstance(secret, IkeSecret) else "EAP secret"
    source = f" from {secret.secret_file}" if secret.secret_file is not None else ""
    return f"{kind} for {_ids(secret.id)}{source}"


def config_summary(loaded: LoadedConfig) -> Group:
    """The human summary of a valid config."""
    config = loaded.config
    counts = ", ".join(
        (
            _plural(len(config.connections), "connection"),
            _plural(len(config.pools), "pool"),
            _plural(len(config.secrets), "secret"),
        )
    )
    lines = [Text.assemble((str(loaded.path), "bold"), ": ", ("OK", "bold green"), f", {counts}")]
    for name, conn in config.connections.items():
        lines += _connection_lines(name, conn)
    if config.pools:
        lines.append(_line(0, "pools:"))
        lines += (_line(1, f"{name}:", _pool_text(pool)) for name, pool in config.pools.items())
    if config.secrets:
        lines.append(_line(0, "secrets:"))
        lines += (_line(1, f"{name}:", _secret_text(secret)) for name, secret in config.secrets.items())
    if config.radius is not None:
        r = config.radius
        servers = _joined(f"{n} {s.address}:{s.auth_port}/{s.acct_port}" for n, s in r.servers.items())
        acct = f", accounting every {r.interim_interval}s" if r.accounting and r.interim_interval else ""
        acct = acct or (", accounting" if r.accounting else "")
        lines.append(_line(0, "radius:", f"{servers} (timeout {r.timeout}s, {r.tries} tries{acct})"))
    for name, a in config.authorities.items():
        sources = _joined([*a.crl_uris, *a.ocsp_uris]) or "no CRLs or responders"
        lines.append(_line(0, f"authority {name}:", f"{a.cacert}; {sources}"))
    users = eap_users(config)
    if users is not None:
        names = users["configured"]
        configured = _joined(names) if isinstance(names, list) and names else "none"
        lines.append(
            _line(0, "EAP users:", f"[secrets.eap*]: {configured}; then the user store {users['store']}")
        )
    return Group(*lines)


def eap_users(config: Config) -> dict[str, JsonValue] | None:
    """Where a gateway finds its EAP users (None: no connection serves EAP users): the users of
    ``[secrets.eap*]`` first, then the store (``daemon.eapusers`` does the same)."""
    if not any(c.remote.auth.is_eap for c in config.connections.values()):
        return None
    configured = sorted(
        {
            eap_user_name(i)
            for s in config.secrets.values()
            if isinstance(s, EapSecret)
            for i in s.id
            if not i.is_any
        }
    )
    s = config.settings
    store = mask_dsn(s.store) if s.store is not None else str(s.users)  # never the password
    return {"configured": cast(JsonValue, configured), "store": store}


def issues_text(issues: Sequence[ConfigIssue], *, severity: str = "error") -> Group:
    """One line per issue: ``error: FILE:KEY: message``."""
    style = "bold red" if severity == "error" else "bold yellow"
    return Group(*(Text.assemble((f"{severity}: ", style), str(issue)) for issue in issues))


def issue_json(issue: ConfigIssue) -> dict[str, JsonValue]:
    """An issue as JSON: ``file``, ``key``, ``message``, and ``line``/``column`` when known."""
    out: dict[str, JsonValue] = {"file": issue.path, "key": issue.key, "message": issue.message}
    if issue.line is not None:
        out["line"] = issue.line
        out["column"] = issue.column
    return out


def _config_json(config: Config) -> dict[str, JsonValue]:
    # Identities, selectors, addresses and proposals serialise as their canonical strings;
    # secret values are excluded by the model itself.
    dumped = config.model_dump(mode="json")
    for name, secret in config.secrets.items():
        dumped["secrets"][name]["type"] = (
            "ike" if isinstance(secret, IkeSecret) else "eap" if isinstance(secret, EapSecret) else "private"
        )
    return cast(dict[str, JsonValue], dumped)


def check_json(loaded: LoadedConfig) -> dict[str, JsonValue]:
    """``check --json`` output for a valid config: the effective configuration (defaults
    filled in, files resolved), with warnings."""
    return {
        "ok": True,
        "file": str(loaded.path),
        "errors": [],
        "warnings": [issue_json(w) for w in loaded.warnings],
        "config": _config_json(loaded.config),
        "eap_users": eap_users(loaded.config),
    }


def check_errors_json(path: str, errors: Sequence[ConfigIssue]) -> dict[str, JsonValue]:
    """``check --json`` output for an invalid config."""
    return {"ok": False, "file": path, "errors": [issue_json(e) for e in errors], "warnings": []}
