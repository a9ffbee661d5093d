"""Checking a study file's tables as they are read: each failure is a one-line `StudyError` naming its place."""

from __future__ import annotations

from typing import Any

from simulator.config import ConfigError


class StudyError(ConfigError):
    """A study file that cannot run as written."""


def check_keys(data: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, dict):
        raise StudyError(f"{where}: expected a table, got {data!r}")
    for key in data:
        if key not in allowed:
            raise StudyError(f"{where}.{key}: unknown key; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise StudyError(f"{where}.{key}: required")
    return data


def typed(value: Any, where: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):  # TOML's true is no number
        raise StudyError(f"{where}: expected {what}, got {value!r}")
    return value


def strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StudyError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)
