"""Typed settings for any settings dataclass, from YAML files and ``KEY=VALUE`` overrides.

YAML 1.1 reads ``1e-3`` as a string (its floats need a dot) and ``--set`` values arrive as text,
so every value is converted to its dataclass field's type, read with ``typing.get_type_hints``:
a file and the command line mean the same thing. A value that does not fit is a ``ValueError``
that names where it came from and the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file: no settings)."""
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the config: {exc}".replace("\n", " ")) from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
    return loaded


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["lr=1e-4", "quotas={vqa: 4}"]`` -> ``{"lr": "1e-4", "quotas": {"vqa": 4}}`` (values read as YAML)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item}: cannot read the value: {exc}".replace("\n", " ")) from None
    return out


def field_types(cls: type) -> dict[str, Any]:
    """Each dataclass field's type, resolved (not the annotation string)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint`` (float, int, bool, str, X | None, list[X], dict[K, V]; other
    types pass unchanged), or a ValueError naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return convert(value, options[0], where)
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{where}: expected a string, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        if not args:
            return dict(value)
        return {convert(k, args[0], where): convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return value


def typed_values(cls: type, layers: Iterable[tuple[str, Mapping[str, Any]]], what: str = "setting"
                 ) -> dict[str, Any]:
    """The settings of ``layers`` (``(source, mapping)``, later ones win) converted to ``cls``'s
    field types; an unknown key is a ValueError naming its source and the known ones."""
    types_ = field_types(cls)
    values: dict[str, Any] = {}
    for source, mapping in layers:
        unknown = sorted(set(mapping) - set(types_))
        if unknown:
            raise ValueError(f"{source}: unknown {what}(s): {', '.join(map(str, unknown))} "
                             f"(known: {', '.join(sorted(types_))})")
        for key, value in mapping.items():
            values[key] = convert(value, types_[key], f"{source}: {what} {key}")
    return values
