"""Run configuration: frozen dataclasses filled from TOML, with validation and a CLI.

Every component describes its parameters as a frozen dataclass that derives from
:class:`Params`, with each field declared through :func:`param` (default, doc string and
constraints)::

    @dataclass(frozen=True)
    class SolverParams(Params):
        h: float = param(1e-2, "time step", gt=0)
        scheme: Literal["bug", "parallel_bug"] = param("bug", "integrator")

    @dataclass(frozen=True)
    class RunConfig(Params):
        solver: SolverParams = param(SolverParams(), "time integration")

:func:`load_config` merges the defaults, a TOML file, a mapping and ``KEY=VALUE`` overrides
(in that order), and builds the nested dataclasses. Every value is checked against its type
hint and constraints, both when loading and when an instance is constructed directly in
Python. A bad value raises :class:`ConfigError`, whose message names the full key path and
what was expected, with a "did you mean" hint for misspelt keys.

:func:`build_parser` gives a driver an :mod:`argparse` parser with ``--config PATH`` and a
repeatable ``--set KEY=VALUE``; its ``--help`` lists every option with its default, doc
string and constraints. :func:`config_to_dict` and :func:`config_to_toml` write a resolved
configuration back out, and ``load_config(cls, data=config_to_dict(cfg)) == cfg``.

Notes
-----
TOML has no null. An optional field (``X | None``) is set to ``None`` by the string
``"none"`` (any case), in a file as in an override; :func:`config_to_dict` omits ``None``
values whose default is ``None`` and writes ``"none"`` for the others, so that the round
trip holds.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import functools
import logging
import numbers
import operator
import os
import pathlib
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import tomli_w

__all__ = [
    "ConfigError",
    "Params",
    "build_parser",
    "config_from_args",
    "config_from_toml",
    "config_to_dict",
    "config_to_toml",
    "describe_options",
    "load_config",
    "load_with_preset",
    "param",
]

logger = logging.getLogger(__name__)

P = TypeVar("P", bound="Params")

_NONE_WORD = "none"
_CONSTRAINT_KEYS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
_COMPARE = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


class ConfigError(ValueError):
    """A configuration value or key is invalid.

    The message names the full key path (``solver.h``) and what was expected.
    """


def param(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[Any] | None = None,
) -> Any:
    """Declare one field of a :class:`Params` dataclass.

    Parameters
    ----------
    default
        The default value. An unhashable default (a non-frozen dataclass, for instance) is
        copied for every instance.
    doc
        One-line description, shown by ``--help``.
    ge, gt, le, lt
        Bounds (``>=``, ``>``, ``<=``, ``<``) for a numeric field; applied to every element
        of a tuple field. ``None`` is never checked against them.
    choices
        Allowed values; applied to every element of a tuple field.

    Returns
    -------
    dataclasses.Field
        A field carrying ``doc`` and the constraints in its metadata.

    Raises
    ------
    TypeError
        If ``doc`` is not a string, a bound is not a real number or ``choices`` is a string.
    """
    if not isinstance(doc, str):
        raise TypeError(f"param(): doc must be a str, got {type(doc).__name__}")
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    for name, bound in bounds.items():
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, numbers.Real)):
            raise TypeError(f"param(): {name} must be a real number, got {bound!r}")
    if choices is not None:
        if isinstance(choices, str | bytes):
            raise TypeError("param(): choices must be a collection of values, not a string")
        choices = tuple(choices)
    metadata = {"doc": doc, "choices": choices}
    metadata.update({k: v for k, v in bounds.items() if v is not None})
    if type(default).__hash__ is None:
        return dataclasses.field(
            default_factory=functools.partial(_copy_default, default), metadata=metadata
        )
    return dataclasses.field(default=default, metadata=metadata)


def _copy_default(value: Any) -> Any:
    return copy.deepcopy(value)


class Params:
    """Mixin base for frozen parameter dataclasses: validates every field on construction.

    Each field value is checked against its type hint (``int``, ``float`` -- an ``int`` is
    accepted and converted --, ``bool``, ``str``, ``pathlib.Path``, ``tuple[X, ...]``,
    ``tuple[X, Y]``, ``dict[str, X]``, ``X | None``, ``Literal[...]`` and nested ``Params``)
    and against the constraints given to :func:`param`. ``bool`` is not accepted for ``int``
    or ``float``. Lists are converted to tuples and nested mappings to their ``Params``
    class. A subclass that defines its own ``__post_init__`` must call
    ``super().__post_init__()``.

    Raises
    ------
    ConfigError
        If a field has a bad value. The key path is relative to this instance.
    """

    def __post_init__(self) -> None:
        cls = type(self)
        hints = _type_hints(cls)
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if not f.init:
                continue
            value = getattr(self, f.name)
            new = _convert(value, hints[f.name], f.name, f.metadata)
            if new is not value:
                object.__setattr__(self, f.name, new)


# ---------------------------------------------------------------------------------------------
# type hints and descriptions


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """Resolve the (possibly string) annotations of a Params dataclass."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a dataclass")
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        raise TypeError(
            f"cannot resolve the type hints of {cls.__qualname__}: {exc}; parameter "
            "classes must be defined at module level"
        ) from exc


def _is_params_class(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Params) and dataclasses.is_dataclass(tp)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """Return ``(inner type, optional)`` for ``X | None``; other types unchanged."""
    args = _union_args(tp)
    if args is not None and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        inner = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007
        return inner, True
    return tp, False


def _type_name(tp: Any) -> str:
    """Short human description of a type hint, without article."""
    if tp is Any or tp is object:
        return "any value"
    if tp is type(None):
        return _NONE_WORD
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if tp is float:
        return "float"
    if tp is str:
        return "str"
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        return "path"
    if _is_params_class(tp):
        return f"table ({tp.__name__})"
    args = _union_args(tp)
    if args is not None:
        return " or ".join(_type_name(a) for a in args)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        targs = typing.get_args(tp)
        if not targs:
            return "tuple"
        if len(targs) == 2 and targs[1] is Ellipsis:
            return f"tuple of {_type_name(targs[0])}"
        return "tuple (" + ", ".join(_type_name(a) for a in targs) + ")"
    if origin is dict:
        kt, vt = typing.get_args(tp) or (Any, Any)
        return f"table of {_type_name(vt)}"
    return getattr(tp, "__name__", repr(tp))


def _with_article(name: str) -> str:
    if name.startswith(("one of", "any ", _NONE_WORD)):
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


def _got(value: Any, *, with_type: bool = True) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})" if with_type else text


def _type_error(path: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(
        f"config key {path!r}: expected {_with_article(_type_name(tp))}, got {_got(value)}"
    )


def _constraint_text(meta: Mapping[str, Any]) -> str:
    return " and ".join(f"{op} {meta[k]!r}" for k, op in _CONSTRAINT_KEYS if k in meta)


# ---------------------------------------------------------------------------------------------
# value conversion and checks


def _is_none_word(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == _NONE_WORD


def _convert(value: Any, tp: Any, path: str, meta: Mapping[str, Any]) -> Any:
    """Check ``value`` against type hint ``tp`` and constraints ``meta``; return it normalised.

    Lists become tuples, ints become floats for ``float`` fields, mappings become their
    ``Params`` class. Raises ConfigError naming ``path``.
    """
    inner, optional = _strip_optional(tp)
    if optional:
        if value is None or _is_none_word(value):
            return None
        return _convert(value, inner, path, meta)
    if tp is Any or tp is object:
        return value

    args = _union_args(tp)
    if args is not None:
        for arg in args:
            try:
                return _convert(value, arg, path, meta)
            except ConfigError:
                continue
        raise _type_error(path, tp, value)

    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError(
                f"config key {path!r}: expected {_type_name(tp)}, got {_got(value)}"
                + _suggest_value(value, allowed)
            )
        return _check_choices(value, path, meta)

    if origin is tuple:
        return _convert_tuple(value, tp, path, meta)

    if origin is dict:
        if not isinstance(value, Mapping):
            raise _type_error(path, tp, value)
        kt, vt = typing.get_args(tp) or (Any, Any)
        out = {}
        for k, v in value.items():
            out[_convert(k, kt, path, {})] = _convert(v, vt, f"{path}.{k}", meta)
        return out

    if _is_params_class(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _build(tp, value, path, None)
        raise _type_error(path, tp, value)

    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(path, tp, value)
        return _check_choices(value, path, meta)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _type_error(path, tp, value)
        value = value if type(value) is int else int(value)
        return _check_number(value, tp, path, meta)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _type_error(path, tp, value)
        value = value if type(value) is float else float(value)
        return _check_number(value, tp, path, meta)
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(path, tp, value)
        return _check_choices(value, path, meta)
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        if not isinstance(value, str | os.PathLike):
            raise _type_error(path, tp, value)
        return value if isinstance(value, tp) else tp(value)

    check = origin if origin is not None else tp
    if isinstance(check, type) and not isinstance(value, check):
        raise _type_error(path, tp, value)
    return value


def _convert_tuple(value: Any, tp: Any, path: str, meta: Mapping[str, Any]) -> tuple[Any, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise _type_error(path, tp, value)
    targs = typing.get_args(tp)
    if not targs:
        return tuple(value)
    if len(targs) == 2 and targs[1] is Ellipsis:
        types_ = [targs[0]] * len(value)
    else:
        if len(value) != len(targs):
            raise ConfigError(
                f"config key {path!r}: expected {_with_article(_type_name(tp))} of length "
                f"{len(targs)}, got {_got(value)} of length {len(value)}"
            )
        types_ = list(targs)
    out = tuple(
        _convert(v, t, f"{path}[{i}]", meta)
        for i, (v, t) in enumerate(zip(value, types_, strict=True))
    )
    if isinstance(value, tuple) and all(a is b for a, b in zip(out, value, strict=True)):
        return value
    return out


def _check_number(value: Any, tp: Any, path: str, meta: Mapping[str, Any]) -> Any:
    for key, _ in _CONSTRAINT_KEYS:
        if key in meta and not _COMPARE[key](value, meta[key]):
            raise ConfigError(
                f"config key {path!r}: expected {_with_article(_type_name(tp))} "
                f"{_constraint_text(meta)}, got {_got(value, with_type=False)}"
            )
    return _check_choices(value, path, meta)


def _check_choices(value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(
            f"config key {path!r}: expected one of {', '.join(repr(c) for c in choices)}, "
            f"got {_got(value, with_type=False)}" + _suggest_value(value, choices)
        )
    return value


def _suggest_value(value: Any, allowed: Iterable[Any]) -> str:
    if not isinstance(value, str):
        return ""
    strings = [a for a in allowed if isinstance(a, str)]
    close = difflib.get_close_matches(value, strings, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------------------------------------
# building from mappings


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _init_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _unknown_key(cls: type, prefix: str, key: Any) -> ConfigError:
    names = list(_init_fields(cls))
    path = _join(prefix, str(key))
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return ConfigError(
            f"unknown config key {path!r}; did you mean {_join(prefix, close[0])!r}?"
        )
    where = f"under {prefix!r}" if prefix else "at the top level"
    return ConfigError(
        f"unknown config key {path!r}; valid keys {where} are: {', '.join(sorted(names))}"
    )


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _build(cls: type[P], data: Mapping[str, Any], prefix: str, base: Any) -> P:
    """Build ``cls`` from ``data`` over ``base`` (an instance, or None for field defaults)."""
    fields = _init_fields(cls)
    hints = _type_hints(cls)
    for key in data:
        if key not in fields:
            raise _unknown_key(cls, prefix, key)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(prefix, name)
        current = getattr(base, name) if base is not None else _field_default(f)
        if name not in data:
            if current is dataclasses.MISSING:
                raise ConfigError(f"missing config key {path!r}")
            kwargs[name] = current
            continue
        value = data[name]
        inner, _ = _strip_optional(hints[name])
        if _is_params_class(inner) and isinstance(value, Mapping):
            sub_base = current if isinstance(current, inner) else None
            kwargs[name] = _build(inner, value, path, sub_base)
        else:
            kwargs[name] = _convert(value, hints[name], path, f.metadata)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # A value passed the field checks but the class's own __post_init__ refused it.
        if prefix:
            raise ConfigError(f"in {prefix!r}: {exc}") from exc
        raise


def _check_params_class(cls: Any) -> None:
    if not _is_params_class(cls):
        raise TypeError(f"expected a Params dataclass, got {cls!r}")


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
        One entry per field. A ``None`` value is omitted when the field's default is None
        too, and written as ``"none"`` otherwise, so that
        ``load_config(type(cfg), data=config_to_dict(cfg)) == cfg``.

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
        if value is None:
            if _field_default(f) is not None:
                out[f.name] = _NONE_WORD
            continue
        out[f.name] = _plain(value)
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


# ---------------------------------------------------------------------------------------------
# command line


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


def _epilog(cls: type[Params]) -> str:
    rows = [(f"{key} = {default}", doc) for key, default, doc in describe_options(cls)]
    width = max((len(left) for left, _ in rows), default=0)
    lines = ["configuration options (set in the --config file or with --set KEY=VALUE):"]
    lines += [f"  {left.ljust(width)}   {doc}".rstrip() for left, doc in rows]
    return "\n".join(lines)


def build_parser(cls: type[Params], *, prog: str, description: str) -> argparse.ArgumentParser:
    """Make a command-line parser for a driver configured by ``cls``.

    Parameters
    ----------
    cls
        The top-level :class:`Params` dataclass.
    prog
        Program name shown in the usage line (e.g. ``"python -m drivers.compress"``).
    description
        Text shown above the arguments.

    Returns
    -------
    argparse.ArgumentParser
        A parser with ``--config PATH`` and a repeatable ``--set KEY=VALUE``, whose help
        epilog lists every option with its default, doc and constraints. Drivers may add
        their own arguments to it.
    """
    _check_params_class(cls)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=_epilog(cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", default=None, help="TOML configuration file")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one option, e.g. --set solver.h=0.005 (repeatable)",
    )
    return parser


def config_from_args(cls: type[P], namespace: argparse.Namespace) -> P:
    """Build a configuration from parsed ``--config`` and ``--set`` arguments.

    Parameters
    ----------
    cls
        The top-level :class:`Params` dataclass.
    namespace
        The result of ``build_parser(cls, ...).parse_args()``.

    Returns
    -------
    P
        The validated configuration.

    Raises
    ------
    ConfigError
        As :func:`load_config`.
    """
    return load_config(
        cls, getattr(namespace, "config", None), getattr(namespace, "set", None) or ()
    )
