"""Run one revocation check and print the verdict as JSON (started inside a network namespace).

stdin: ``{"chain": [hex DER...], "anchor": hex DER, "policy": "strict", "crl_files": [...],
"timeout": 3}``; stdout: the verdict's fields as one JSON object. Used by
test_revocation_servers.py, whose servers live in another namespace.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from pyipsec.revocation import HttpFetcher, RevocationChecker, RevocationPolicy


def main() -> None:
    request = json.load(sys.stdin)
    checker = RevocationChecker(
        crl_files=[Path(p) for p in request.get("crl_files", [])],
        fetcher=HttpFetcher(timeout=float(request.get("timeout", 3))),
    )
    verdict = asyncio.run(
        checker.check(
            [bytes.fromhex(c) for c in request["chain"]],
            bytes.fromhex(request["anchor"]),
            RevocationPolicy(request["policy"]),
        )
    )
    json.dump(
        {
            "ok": verdict.ok,
            "status": verdict.status.value,
            "serial": verdict.serial,
            "subject": verdict.subject,
            "source": verdict.source,
            "reason": verdict.reason,
            "warnings": list(verdict.warnings),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
