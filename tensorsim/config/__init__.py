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

from tensorsim.config._schema import ConfigError, Params, param
from tensorsim.config._toml import (
    config_from_toml,
    config_to_dict,
    config_to_toml,
    describe_options,
    load_config,
    load_with_preset,
)

__all__ = [
    "ConfigError",
    "Params",
    "config_from_toml",
    "config_to_dict",
    "config_to_toml",
    "describe_options",
    "load_config",
    "load_with_preset",
    "param",
]
