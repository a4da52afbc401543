"""Configurations as TOML: layered loading (defaults, presets, files, overrides) and writing.

:func:`load_config` merges the defaults, a TOML file, a mapping and ``KEY=VALUE`` overrides;
:func:`load_with_preset` puts a named preset's table under the file; :func:`config_to_toml`
writes a resolved configuration, every default included, and :func:`describe_options` lists
every option with its default (for help texts and docs).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import tomli_w

from tensorsim.config._schema import (
    _NONE_WORD,
    ConfigError,
    P,
    Params,
    _build,
    _check_params_class,
    _constraint_text,
    _convert,
    _field_default,
    _init_fields,
    _is_params_class,
    _join,
    _strip_optional,
    _type_hints,
    _type_name,
    _unknown_key,
    _with_article,
)

__all__ = [
    "config_from_toml",
    "config_to_dict",
    "config_to_toml",
    "describe_options",
    "load_config",
    "load_with_preset",
]

logger = logging.getLogger(__name__)


def _deep_merge(into: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = _deep_merge({}, value)
        else:
            into[key] = value
    return into


def _apply_override(cls: type, merged: dict[str, Any], text: str) -> None:
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"invalid override {text!r}: expected KEY=VALUE, e.g. solver.h=0.01")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"invalid override {text!r}: bad key {key!r}")

    target: Any = cls
    node = merged
    prefix = ""
    for i, part in enumerate(parts):
        fields = _init_fields(target)
        if part not in fields:
            raise _unknown_key(target, prefix, part)
        tp = _type_hints(target)[part]
        path = _join(prefix, part)
        if i == len(parts) - 1:
            node[part] = _parse_override_value(raw, tp, path, fields[part].metadata)
            return
        inner, _ = _strip_optional(tp)
        if not _is_params_class(inner):
            raise ConfigError(
                f"invalid override {text!r}: config key {path!r} is not a table "
                f"(it is {_with_article(_type_name(tp))})"
            )
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
        target = inner
        prefix = path


def _parse_override_value(raw: str, tp: Any, path: str, meta: Mapping[str, Any]) -> Any:
    _, optional = _strip_optional(tp)
    if optional and raw.lower() == _NONE_WORD:
        return None
    try:
        parsed = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    try:
        _convert(parsed, tp, path, meta)
    except ConfigError:
        # e.g. ``--set input.source=2024`` for a str field: keep the text if that fits.
        try:
            _convert(raw, tp, path, meta)
        except ConfigError:
            return parsed
        return raw
    return parsed


def _read_toml_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {os.fspath(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {os.fspath(path)!r} is not valid TOML: {exc}") from exc


def load_config(
    cls: type[P],
    path: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    *,
    data: Mapping[str, Any] | None = None,
) -> P:
    """Build a configuration from defaults, a TOML file, a mapping and overrides.

    Later sources win: defaults, then the file at ``path``, then ``data``, then
    ``overrides``. Nested tables are merged key by key.

    Parameters
    ----------
    cls
        The top-level :class:`Params` dataclass.
    path
        A TOML file, or None.
    overrides
        Strings ``"a.b=value"``. The value is read as a TOML value (``0.01``, ``[8, 8]``,
        ``true``, ``"text"``), or taken as a bare string when it is not valid TOML; ``none``
        (any case) sets an optional field to None.
    data
        A nested mapping of values, or None.

    Returns
    -------
    P
        The validated configuration.

    Raises
    ------
    ConfigError
        On an unreadable file, an unknown key (with a "did you mean" hint), a malformed
        override, or a value of the wrong type or out of range. The message names the key.
    TypeError
        If ``cls`` is not a Params dataclass.
    """
    _check_params_class(cls)
    if isinstance(overrides, str):
        overrides = (overrides,)
    merged: dict[str, Any] = {}
    if path is not None:
        _deep_merge(merged, _read_toml_file(path))
        logger.debug("read config file %s", os.fspath(path))
    if data is not None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"config data must be a mapping, got {type(data).__name__}")
        _deep_merge(merged, data)
    for text in overrides:
        _apply_override(cls, merged, text)
    return _build(cls, merged, "", None)


def load_with_preset(
    cls: type[P],
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str],
    presets: Mapping[str, Callable[[], Params]],
    *,
    table: str = "problem",
) -> P:
    """Build a configuration whose ``table`` defaults come from the chosen ``preset``.

    Sources, later ones winning: the field defaults, the preset's ``table`` values, the
    TOML file at ``path``, the ``KEY=VALUE`` overrides. The preset is the last ``preset``
    given (override, else file, else the field default of ``cls``).

    Parameters
    ----------
    cls
        The top-level configuration, with a ``preset`` field and a ``table`` table.
    path
        A TOML file, or None.
    overrides
        ``--set`` strings.
    presets
        Preset name -> function returning the ``table`` value.
    table
        The table whose defaults a preset sets.

    Returns
    -------
    P
        The validated configuration.

    Raises
    ------
    ConfigError
        As :func:`load_config` (an unknown preset names ``preset``).
    """
    data = _read_toml_file(path) if path is not None else {}
    name = data.get("preset", getattr(cls, "preset", None))
    for text in overrides:
        key, sep, raw = str(text).partition("=")
        if sep and key.strip() == "preset":
            name = _parse_override_value(raw.strip(), str, "preset", {})
    if isinstance(name, str) and name in presets:
        data = _deep_merge({table: config_to_dict(presets[name]())}, data)
    return load_config(cls, None, list(overrides), data=data)


def config_from_toml(cls: type[P], text: str) -> P:
    """Build a configuration from TOML text (over the defaults).

    Parameters
    ----------
    cls
        The top-level :class:`Params` dataclass.
    text
        A TOML document.

    Returns
    -------
    P
        The validated configuration.

    Raises
    ------
    ConfigError
        If ``text`` is not valid TOML or holds a bad key or value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config text is not valid TOML: {exc}") from exc
    return load_config(cls, data=data)


# ---------------------------------------------------------------------------------------------
# writing out


def _plain(value: Any) -> Any:
    if isinstance(value, Params):
        return config_to_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, pathlib.PurePath):
        return str(value)
    return value


def config_to_dict(cfg: Params) -> dict[str, Any]:
    """Convert a configuration to nested plain dicts (tuples become lists).

    Parameters
    ----------
    cfg
        A :class:`Params` instance.

    Returns
    -------
    dict
        One entry per field; a ``None`` value is written as ``"none"`` (TOML has no null),
        so that ``load_config(type(cfg), data=config_to_dict(cfg)) == cfg`` also where an
        enclosing table's default instance sets the field to something else.

    Raises
    ------
    TypeError
        If ``cfg`` is not a Params dataclass instance.
    """
    if not (isinstance(cfg, Params) and dataclasses.is_dataclass(cfg)):
        raise TypeError(f"expected a Params dataclass instance, got {type(cfg).__name__}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value = getattr(cfg, f.name)
        out[f.name] = _NONE_WORD if value is None else _plain(value)
    return out


def config_to_toml(cfg: Params) -> str:
    """Write a configuration as TOML text, every default included.

    Parameters
    ----------
    cfg
        A :class:`Params` instance.

    Returns
    -------
    str
        A TOML document that :func:`config_from_toml` reads back to an equal configuration.
    """
    return tomli_w.dumps(config_to_dict(cfg))


def _default_text(value: Any) -> str:
    if value is None:
        return _NONE_WORD
    if value is dataclasses.MISSING:
        return "(required)"
    value = _plain(value)
    if isinstance(value, list):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{k} = {_default_text(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    try:
        return tomli_w.dumps({"v": value}).strip()[4:]
    except (TypeError, ValueError):
        return repr(value)


def _doc_with_constraints(doc: str, tp: Any, meta: Mapping[str, Any]) -> str:
    notes = []
    constraint = _constraint_text(meta)
    if constraint:
        notes.append(constraint)
    inner, optional = _strip_optional(tp)
    if meta.get("choices") is not None:
        notes.append("one of " + ", ".join(_default_text(c) for c in meta["choices"]))
    elif typing.get_origin(inner) is Literal:
        notes.append("one of " + ", ".join(_default_text(c) for c in typing.get_args(inner)))
    if optional:
        notes.append("none allowed")
    return f"{doc} [{'; '.join(notes)}]" if notes else doc


def describe_options(cls: type[Params]) -> list[tuple[str, str, str]]:
    """List every option of a configuration class, nested ones included.

    Parameters
    ----------
    cls
        A :class:`Params` dataclass.

    Returns
    -------
    list of (str, str, str)
        ``(key path, default as TOML text, doc)`` for each leaf option, in declaration
        order. The doc ends with the constraints in brackets, e.g. ``[> 0]`` or
        ``[one of "a", "b"]``.
    """
    _check_params_class(cls)
    out: list[tuple[str, str, str]] = []
    _describe(cls, "", None, out)
    return out


def _describe(cls: type, prefix: str, base: Any, out: list[tuple[str, str, str]]) -> None:
    hints = _type_hints(cls)
    for name, f in _init_fields(cls).items():
        path = _join(prefix, name)
        default = getattr(base, name) if base is not None else _field_default(f)
        inner, _ = _strip_optional(hints[name])
        if _is_params_class(inner):
            _describe(inner, path, default if isinstance(default, inner) else None, out)
            continue
        doc = _doc_with_constraints(f.metadata.get("doc", ""), hints[name], f.metadata)
        out.append((path, _default_text(default), doc))
