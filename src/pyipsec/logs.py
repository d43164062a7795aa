"""pyipsec's log lines: text for people, or one JSON object per line for log collectors.

Theory of operation
-------------------
``[settings] log_format`` picks the formatter of the one handler (standard error, which systemd's
journal collects) of the daemon (``cli.daemon``) and of its data-plane process
(``dataplane.process``, which gets the format on its command line). This module imports only the
standard library, so the data plane loads nothing more for it.

- ``text`` (default) — ``TIME LEVEL LOGGER: MESSAGE``. When standard error is the journal
  (``JOURNAL_STREAM`` names its device and inode, systemd.exec(5)), the time is left out: the
  journal stamps every line itself.
- ``json`` — :class:`JsonFormatter`: one object per line with ``time`` (UTC, ISO 8601, ms),
  ``level``, ``logger``, ``message`` (the text line's message, SA prefix included), and every
  structured field the log call attached: an IKE SA's lines carry ``sa`` (the connection name),
  ``sa_id`` (its unique id), ``peer`` (address:port) and, on lifecycle lines, ``event`` and its
  details (``cause``, ``child``, ``child_id``; ``ike.sa.SaLogAdapter``); a traceback goes into
  ``exception``. Newlines inside a message are escaped by JSON, so one record is always one line.

The fields are whatever ``extra=`` put on the record beyond the standard attributes, so a new
field needs no change here. Nothing here filters secrets: log calls never pass them (the
engine's rule, ``ike.sa``), and the tests check that a PSK or an EAP password used in a
handshake appears in neither format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure_logging", "stderr_is_journal"]

#: The values of ``log_format`` (``config.model.LogFormat``).
FORMATS = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"
# what every LogRecord has (and the attributes formatters add): the rest came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in obj:
                obj[key] = value
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exception"] = record.exc_text
        return json.dumps(obj, ensure_ascii=False, default=str)


def stderr_is_journal(environ: dict[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """Whether standard error is connected to systemd's journal (``JOURNAL_STREAM=dev:inode``)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def configure_logging(
    level: int, fmt: str, stream: TextIO | None = None, *, text_format: str = TEXT_FORMAT
) -> logging.Handler:
    """Send the root logger's records at ``level`` and above to ``stream`` (standard error) as
    ``fmt`` (:data:`FORMATS`; ``text_format`` for text); the handler it installed."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: must be one of {', '.join(FORMATS)}")
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        if stderr_is_journal(stream=out):  # the journal stamps the time itself
            text_format = text_format.replace("%(asctime)s ", "")
        handler.setFormatter(logging.Formatter(text_format))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
