"""Reading the TOML config file into :class:`~pyipsec.config.model.Config`, with errors that
name the file and the key path (DESIGN.md §6).

Theory of operation: :func:`read_config` reads the file with :mod:`tomllib` (a syntax error
becomes one issue carrying line and column), validates it with the file's directory as
``base_dir`` (so ``certs = ["gw.pem"]`` means the file beside the config), and turns *every*
pydantic error into a :class:`ConfigIssue` whose ``key`` is a dotted path in TOML syntax,
``connections.office.children.net.local_ts[0]``, and whose message says what was expected
and what was found. Unknown keys get a "did you mean" from the keys that section accepts. If
anything is wrong, :class:`ConfigErrors` carries the whole list. A valid file may still earn
warnings (a ``secret_file`` others can read, no connections); a short pre-shared key is an
error unless its connections set ``insecure_psk`` (:class:`~pyipsec.config.model.Config`).
:func:`load_config` is the same minus the warnings, which it logs.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pyipsec.config.model import Config, IkeSecret, psk_users, secret_model_for
from pyipsec.errors import ConfigError

__all__ = [
    "ConfigErrors",
    "ConfigIssue",
    "LoadedConfig",
    "format_key_path",
    "load_config",
    "parse_config",
    "read_config",
]

log = logging.getLogger(__name__)


class ConfigIssue(ConfigError):
    """One problem in a config file: ``path`` (the file), ``key`` (dotted key path, empty for
    the file as a whole), the bare ``message``, and for TOML syntax errors ``line``/``column``."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        key: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message, path=path, key=key)
        self.message = message
        self.line = line
        self.column = column
        if line is not None:
            where = f"{path}:{line}" + (f":{column}" if column is not None else "")
            self.args = (f"{where}: {message}",)


class ConfigErrors(ConfigError):
    """Every problem found in one config file (``errors``: sections in model order, then keys)."""

    def __init__(self, errors: Sequence[ConfigIssue], *, path: str = "") -> None:
        self.errors = tuple(errors)
        super().__init__(f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}", path=path)
        self.args = ("\n".join([str(self.args[0]), *(str(e) for e in self.errors)]),)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A valid config, the file it came from, and any warnings about it."""

    config: Config
    path: Path
    warnings: tuple[ConfigIssue, ...] = ()


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``; raises :class:`ConfigErrors`."""
    loaded = read_config(path)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return loaded.config


def read_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Like :func:`load_config`, but return the warnings instead of logging them."""
    file = Path(path)
    name = str(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigErrors(
            [ConfigIssue(f"cannot read: {exc.strerror or exc}", path=name)], path=name
        ) from None
    except UnicodeDecodeError as exc:
        issue = ConfigIssue(f"not UTF-8 text (byte {exc.start})", path=name)
        raise ConfigErrors([issue], path=name) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigErrors([_syntax_issue(exc, name)], path=name) from None
    config = parse_config(data, base_dir=file.resolve().parent, source=name)
    return LoadedConfig(config, file, tuple(_warnings(config, name)))


def parse_config(data: Mapping[str, object], *, base_dir: Path | None = None, source: str = "") -> Config:
    """Validate already-parsed TOML data. With ``base_dir``, file references are resolved
    against it and must exist. Raises :class:`ConfigErrors` naming ``source``."""
    context: dict[str, object] = {} if base_dir is None else {"base_dir": base_dir}
    try:
        return Config.model_validate(dict(data), context=context)
    except ValidationError as exc:
        issues = [_issue(err, source) for err in exc.errors(include_url=False)]
        raise ConfigErrors(issues, path=source) from None


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_key_path(loc: Sequence[str | int]) -> str:
    """``("connections", "office", "local_ts", 0)`` → ``connections.office.local_ts[0]``;
    keys that are not bare TOML keys are quoted."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{key}" if out else key
    return out


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _syntax_issue(exc: tomllib.TOMLDecodeError, path: str) -> ConfigIssue:
    text = str(exc)
    match = _TOML_POSITION.search(text)
    if match is None:
        return ConfigIssue(f"invalid TOML: {text}", path=path)
    message = f"invalid TOML: {text[: match.start()]}"
    return ConfigIssue(message, path=path, line=int(match.group(1)), column=int(match.group(2)))


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "tuple_type": "an array",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "path_type": "a file path",
}


def _issue(err: ErrorDetails, path: str) -> ConfigIssue:
    loc = tuple(err["loc"])
    key = format_key_path(loc)
    return ConfigIssue(_message(err, loc), path=path, key=key)


def _message(err: ErrorDetails, loc: tuple[str | int, ...]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = _show(err["input"])
    if kind == "config":
        return str(ctx.get("reason", err["msg"]))
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "missing":
        if _is_model(_annotation_at(loc)):
            return f"missing required section [{format_key_path(loc)}]"
        return "missing required key"
    if kind == "extra_forbidden":
        what = "section" if isinstance(err["input"], dict) else "key"
        return f"unknown {what}{_suggest(loc)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}"
    if kind == "enum":
        return f"expected {str(ctx.get('expected')).replace(chr(39), chr(34))}, got {got}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"must be {words} {ctx.get(name)}, got {got}"
    if kind == "too_short":
        return "must not be empty"
    return f"{err['msg']} (got {got})"


def _unwrap(tp: object) -> object:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _is_model(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _annotation_at(loc: Sequence[str | int]) -> object:
    """The declared type at ``loc`` below :class:`Config` (None if it cannot be followed)."""
    current: object = Config
    for part in loc:
        current = _unwrap(current)
        if _is_model(current):
            assert isinstance(current, type) and issubclass(current, BaseModel)
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
            continue
        origin = get_origin(current)
        args = get_args(current)
        if origin in (dict, Mapping) and len(args) == 2:
            value = _unwrap(args[1])
            if get_origin(value) in (Union, types.UnionType) and isinstance(part, str):
                value = secret_model_for(part)  # [secrets.NAME]: the model depends on the name
            current = value
        elif origin is tuple and args:
            current = args[0]
        else:
            return None
    return current


def _suggest(loc: tuple[str | int, ...]) -> str:
    parent = _unwrap(_annotation_at(loc[:-1]))
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)) or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(parent.model_fields), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(_show(c) for c in close)}?)" if close else ""


def _warnings(config: Config, path: str) -> list[ConfigIssue]:
    found: list[ConfigIssue] = []
    if not config.connections:
        found.append(ConfigIssue("no connections defined", path=path, key="connections"))
    for name, secret in config.secrets.items():
        if isinstance(secret, IkeSecret) and secret.weakness:  # Config refused it unless opted in
            users = ", ".join(f"connections.{n}" for n in psk_users(config, secret))
            found.append(
                ConfigIssue(
                    f"{secret.weakness}; accepted because {users} sets insecure_psk = true",
                    path=path,
                    key=format_key_path(("secrets", name, "secret_file" if secret.secret_file else "secret")),
                )
            )
        secret_file = getattr(secret, "secret_file", None)
        if isinstance(secret_file, Path):
            try:
                mode = secret_file.stat().st_mode
            except OSError:
                continue
            if mode & 0o077:
                found.append(
                    ConfigIssue(
                        f'"{secret_file}" is accessible to group or others '
                        f"(mode {mode & 0o777:o}); chmod 600 it",
                        path=path,
                        key=format_key_path(("secrets", name, "secret_file")),
                    )
                )
    return found
