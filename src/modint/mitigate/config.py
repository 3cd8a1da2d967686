"""Training settings from their sources: ``TrainConfig`` defaults (the published recipe), a preset
(``configs/train/<name>.yaml``, shipped in the package), a YAML file, ``--set KEY=VALUE``
overrides and explicit options, in increasing priority. Values take their ``TrainConfig`` field's
type (see ``modint.settings``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from modint.mitigate.train import TrainConfig
from modint.settings import parse_overrides, read_mapping, typed_values


def preset_dir() -> Path:
    """The folder of the preset files (``<name>.yaml``), inside the installed package."""
    return Path(str(resources.files("modint") / "configs" / "train"))


def presets() -> dict[str, dict[str, Any]]:
    """Preset name -> its settings, as its YAML file writes them (settings it does not name keep
    the ``TrainConfig`` defaults). ``modint train --model NAME`` applies the preset NAME."""
    return {path.stem: read_mapping(path) for path in sorted(preset_dir().glob("*.yaml"))}


def from_sources(preset: str | None = None, yaml_file: str | Path | None = None, overrides: Sequence[str] = (),
                 options: Mapping[str, Any] | None = None) -> TrainConfig:
    """A checked ``TrainConfig`` from, in increasing priority: its defaults, the preset named
    ``preset``, the YAML file ``yaml_file``, ``overrides`` (``"KEY=VALUE"`` strings, values read as
    YAML) and ``options`` (None values are left out, as options a user did not give).

    Raises ValueError, with one message naming the source and the setting, for an unknown
    preset or setting, a value of the wrong type, or settings ``TrainConfig.check`` refuses."""
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if preset is not None:
        known = presets()
        if preset not in known:
            raise ValueError(f"unknown training preset {preset!r}; use one of {', '.join(known) or '(none)'}")
        layers.append((f"preset {preset}", known[preset]))
    if yaml_file is not None:
        layers.append((str(yaml_file), read_mapping(yaml_file)))
    layers.append(("--set", parse_overrides(overrides)))
    layers.append(("option", {k: v for k, v in (options or {}).items() if v is not None}))
    try:
        cfg = TrainConfig(**typed_values(TrainConfig, layers, what="training setting"))
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    cfg.check()
    return cfg
