"""Parameter classes: frozen dataclasses whose fields are checked on construction.

:class:`Params` is the mixin of every component's parameters, :func:`param` declares a field
(default, doc string, constraints) and :class:`ConfigError` is raised, naming the full key
path, when a value or key is refused. :func:`build` fills a class from nested mappings.
Reading and writing TOML is :mod:`tensorsim.config._toml`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import logging
import numbers
import operator
import os
import pathlib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

__all__ = ["ConfigError", "Params", "param"]

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

    A subclass whose docstring has no ``Attributes`` section gets one, written from the
    doc strings of its :func:`param` fields (so one-line fields are documented once); a
    hand-written ``Attributes`` section is kept as it is.

    Raises
    ------
    ConfigError
        If a field has a bad value. The key path is relative to this instance.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        doc = cls.__dict__.get("__doc__")
        if doc is None or re.search(r"\n\s*Attributes\s*\n\s*-+\s*\n", doc):
            return
        entries = [
            (name, value.metadata["doc"])
            for name in cls.__dict__.get("__annotations__", {})
            if isinstance(value := cls.__dict__.get(name), dataclasses.Field)
            and value.metadata.get("doc")
        ]
        if entries:
            lines = [f"    {name}\n        {text}" for name, text in entries]
            cls.__doc__ = (
                doc.rstrip() + "\n\n    Attributes\n    ----------\n" + "\n".join(lines) + "\n"
            )

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
