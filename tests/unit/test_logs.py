"""``pyipsec.logs``: the JSON formatter, the text format, and the journal's own time stamps."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest

from pyipsec.config.model import LogFormat, Settings
from pyipsec.dataplane.process import parse_args
from pyipsec.ike.sa import SaLogAdapter
from pyipsec.logs import TEXT_FORMAT, JsonFormatter, configure_logging, stderr_is_journal


def _record(logger: logging.Logger, emit: object) -> logging.LogRecord:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        emit()  # type: ignore[operator]
    finally:
        logger.removeHandler(handler)
    (record,) = records
    return record


def test_an_sa_line_carries_its_fields_and_event_in_json(request: object) -> None:
    logger = logging.getLogger(f"test.logs.{id(request)}")
    log = SaLogAdapter(logger, "office[7] 0102_i 0304_r 192.0.2.2:4500")
    log.fields = {"sa": "office", "sa_id": 7, "peer": "192.0.2.2:4500"}
    record = _record(
        logger, lambda: log.info("IKE SA closed: %s", "deleted by peer", extra={"event": "ike_closed"})
    )
    obj = json.loads(JsonFormatter().format(record))
    assert obj["sa"] == "office" and obj["sa_id"] == 7 and obj["peer"] == "192.0.2.2:4500"
    assert obj["event"] == "ike_closed" and obj["level"] == "info" and obj["logger"] == logger.name
    assert obj["message"] == "office[7] 0102_i 0304_r 192.0.2.2:4500 IKE SA closed: deleted by peer"
    assert obj["time"].endswith("+00:00") and "T" in obj["time"]
    # the text line is what it was: the prefix says which SA, no fields appended
    text = logging.Formatter(TEXT_FORMAT).format(record)
    assert text.endswith(" I " + logger.name + ": " + obj["message"])
    # the adapter's fields are not changed by one call's extra
    assert log.fields == {"sa": "office", "sa_id": 7, "peer": "192.0.2.2:4500"}


def test_a_plain_line_has_only_the_four_keys_and_one_line_per_record() -> None:
    logger = logging.getLogger("test.logs.plain")
    record = _record(logger, lambda: logger.warning("two\nlines %s", "here"))
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line).keys() == {"time", "level", "logger", "message"}
    assert json.loads(line)["message"] == "two\nlines here"


def test_a_traceback_goes_into_exception() -> None:
    logger = logging.getLogger("test.logs.exc")

    def fail() -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it failed")

    obj = json.loads(JsonFormatter().format(_record(logger, fail)))
    assert obj["level"] == "error" and "ValueError: boom" in obj["exception"]


def test_log_format_is_a_setting_with_text_by_default() -> None:
    assert Settings().log_format is LogFormat.TEXT
    assert Settings.model_validate({"log_format": "json"}).log_format is LogFormat.JSON


def test_configure_logging_installs_the_chosen_formatter() -> None:
    root = logging.getLogger()
    level = root.level
    for fmt, check in (
        (LogFormat.JSON, json.loads),
        (LogFormat.TEXT, lambda s: s.index(" I test.logs.cfg: hi")),
    ):
        out = io.StringIO()
        handler = configure_logging(logging.INFO, fmt, out)
        try:
            logging.getLogger("test.logs.cfg").info("hi")
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        check(out.getvalue().strip())


def test_the_journal_is_recognised_by_device_and_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "stderr").open("w") as f:
        st = os.fstat(f.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, f)
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, f)
        assert not stderr_is_journal({"JOURNAL_STREAM": "junk"}, f)
        assert not stderr_is_journal({}, f)
        # under the journal, the text lines leave the time stamp to it
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        root = logging.getLogger()
        level = root.level
        handler = configure_logging(logging.INFO, LogFormat.TEXT, f)
        try:
            logging.getLogger("test.logs.journal").info("hi")
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
    assert (tmp_path / "stderr").read_text() == "I test.logs.journal: hi\n"


def test_an_unknown_format_is_refused_and_the_data_plane_takes_the_format() -> None:
    with pytest.raises(ValueError, match="log format 'xml': must be one of text, json"):
        configure_logging(logging.INFO, "xml", io.StringIO())
    args = parse_args(["--channel-fd", "3", "--log-format", "json"])
    assert args.log_format == "json"
    assert parse_args(["--channel-fd", "3"]).log_format == "text"


def test_the_data_plane_text_lines_keep_their_own_format() -> None:
    root = logging.getLogger()
    level = root.level
    out = io.StringIO()
    handler = configure_logging(logging.INFO, "text", out, text_format="dataplane %(levelname)s %(message)s")
    try:
        logging.getLogger("test.logs.dp").warning("hello")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert out.getvalue() == "dataplane WARNING hello\n"
