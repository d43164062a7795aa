"""Static checks over ``src/pyipsec`` (RELIABILITY.md §5 C1, C4): how secrets are compared and
how signatures are checked, enforced by reading the source.

* C1 — MACs, ICVs, PSK AUTH values, cookies and authenticators are compared only with
  ``hmac.compare_digest``: no ``==``/``!=`` whose operand is named like one of them (a timing
  side channel on a MAC lets an attacker forge it byte by byte). The few comparisons that match
  the names but are not secret comparisons are listed in :data:`NOT_SECRET` with the reason.
  And each module that checks a MAC of ours calls ``compare_digest``.
* C4 — signatures are verified only through the ``cryptography`` verify APIs: no modular
  exponentiation outside the MODP key exchange (hand-rolled RSA), no PKCS#1 DigestInfo prefixes
  in the source (hand-parsed padding), no other signature library imported, and the signature
  module's verifiers end in ``.verify(...)`` calls.

Each rule is tested against a small bad example too, so a rule that silently matches nothing
fails here.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "pyipsec"

_SECRET_NAME = re.compile(
    r"(^|_)(mac|macs|icv|digest|psk|auth_data|cookie|authenticator|signature|hmac|nt_response|"
    r"expected_auth|received)($|_)",
    re.IGNORECASE,
)

_NOT_VALUES = ("_len", "_size", "_type", "_id")  # sizes and kinds, not the values themselves

NOT_SECRET = {
    # our own outgoing packet checked against what pyrad computed (no attacker input, no oracle)
    ("radius/codec.py", "ma != [message_authenticator(secret, raw, authenticator)]"),
    # a CRL file's stat() signature (size, mtime, inode) for the cache, not a cryptographic value
    ("revocation/crl.py", "cached.signature == signature"),
}


@functools.cache
def _parsed() -> tuple[tuple[str, ast.Module], ...]:
    return tuple(
        (path.relative_to(SRC).as_posix(), ast.parse(path.read_text(), filename=str(path)))
        for path in sorted(SRC.rglob("*.py"))
    )


def _modules() -> Iterator[tuple[str, ast.Module]]:
    """Every module of src/pyipsec, parsed once per test session."""
    yield from _parsed()


def _operand_names(node: ast.expr) -> Iterator[str]:
    """Names an operand is made of — but not lengths, constants or enum members."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return
    for n in ast.walk(node):
        name = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else None
        if name is not None and not name.lstrip("_").isupper() and not name.endswith(_NOT_VALUES):
            yield name


def _secret_comparisons(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not any(isinstance(o, (ast.Eq, ast.NotEq)) for o in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) and o.value is None for o in operands):
            continue
        if any(_SECRET_NAME.search(name) for o in operands for name in _operand_names(o)):
            yield ast.unparse(node)


def test_the_comparison_rule_catches_a_plain_mac_comparison() -> None:
    bad = ast.parse("def check(icv, expected_mac):\n    return icv == expected_mac\n")
    assert list(_secret_comparisons(bad)) == ["icv == expected_mac"]
    fine = ast.parse("ok = hmac.compare_digest(icv, mac) and len(icv) == ICV_LEN\n")
    assert list(_secret_comparisons(fine)) == []


def test_secrets_are_never_compared_with_eq() -> None:
    found = [
        (module, text)
        for module, tree in _modules()
        for text in _secret_comparisons(tree)
        if (module, text) not in NOT_SECRET
    ]
    assert found == []


def test_the_exceptions_still_exist() -> None:
    """An exception that no longer matches anything is stale: remove it."""
    everything = {(module, text) for module, tree in _modules() for text in _secret_comparisons(tree)}
    assert everything >= NOT_SECRET


@pytest.mark.parametrize(
    "module",
    [
        "ike/keymat.py",  # the PSK AUTH value (RFC 7296 §2.15)
        "crypto/integ.py",  # IKE and ESP ICVs
        "esp/packet.py",  # the data plane's inline ICV check
        "ike/cookies.py",  # IKE_SA_INIT COOKIEs
        "ike/tasks/ike_mobike.py",  # COOKIE2 (RFC 4555 §5.3)
        "ike/eap/mschapv2.py",  # NT-Response and Authenticator Response
        "radius/codec.py",  # Response Authenticator, Message-Authenticator
    ],
)
def test_each_mac_check_uses_compare_digest(module: str) -> None:
    tree = ast.parse((SRC / module).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "compare_digest"]
    assert calls, f"{module} no longer calls compare_digest"


# -- C4 -----------------------------------------------------------------------------------------

_DIGEST_INFO = [
    bytes.fromhex("3021300906052b0e03021a05000414"),  # SHA-1
    bytes.fromhex("3031300d060960864801650304020105000420"),  # SHA-256
    bytes.fromhex("3041300d060960864801650304020205000430"),  # SHA-384
    bytes.fromhex("3051300d060960864801650304020305000440"),  # SHA-512
]
_SIGNATURE_LIBRARIES = {"rsa", "ecdsa", "Crypto", "Cryptodome", "nacl", "ed25519", "pure25519"}


def _modexp_calls(tree: ast.Module) -> list[str]:
    return [
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id == "pow"
        and len(n.args) == 3
    ]


def _digest_info_literals(tree: ast.Module) -> list[bytes]:
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, bytes)
        and any(p[:8] in n.value for p in _DIGEST_INFO)
    ]


def test_the_c4_rules_catch_hand_rolled_rsa() -> None:
    bad = ast.parse(
        "def verify(s, e, n):\n"
        "    em = pow(s, e, n).to_bytes(256, 'big')\n"
        "    return b'\\x30\\x31\\x30\\x0d\\x06\\x09\\x60\\x86\\x48' in em\n"
    )
    assert _modexp_calls(bad) == ["pow(s, e, n)"]
    assert _digest_info_literals(bad)


def test_modular_exponentiation_only_in_the_modp_key_exchange() -> None:
    found = {module: calls for module, tree in _modules() if (calls := _modexp_calls(tree))}
    assert set(found) <= {"crypto/ke.py"}


def test_no_pkcs1_digest_info_in_the_source() -> None:
    assert {module for module, tree in _modules() if _digest_info_literals(tree)} == set()


def test_no_other_signature_library_is_imported() -> None:
    imported = set()
    for _, tree in _modules():
        for n in ast.walk(tree):
            if isinstance(n, ast.Import):
                imported |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                imported.add(n.module.split(".")[0])
    assert not imported & _SIGNATURE_LIBRARIES


def test_signature_verifiers_call_the_cryptography_verify_api() -> None:
    tree = ast.parse((SRC / "crypto" / "sig.py").read_text())
    verifiers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and "verify" in n.name]
    assert verifiers
    for fn in verifiers:
        calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)]
        assert any(c.func.attr == "verify" for c in calls if isinstance(c.func, ast.Attribute)), fn.name  # type: ignore[union-attr]
