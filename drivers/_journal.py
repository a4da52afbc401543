"""The case journal of a sweep: finished cases kept as they complete, so a crash loses few.

A :class:`drivers._base.Sweep` computes independent cases and writes its output file only
at the end. While it runs, rank 0 keeps the directory ``<output>.cases/`` next to the
output file: ``journal.json`` (the run's configuration as TOML text and a fingerprint of
every case) and, for every finished case ``i``, ``case_<i>.json`` with its result and, when
the result holds arrays, ``case_<i>.npz`` with them. Each file is written once, atomically
(temporary file, fsync, rename), the ``.json`` last, so the cost per case does not grow with
the sweep and ``kill -9`` at any instant leaves only whole cases. ``--restart <output>``
reads them, computes the missing cases and writes the output file, which is then the one
of an uninterrupted run (apart from wall-time entries). The directory is removed once the
output file is written.

Nothing is pickled: the JSON holds numbers (floats by their shortest exact repr, so they
come back to the bit), strings, None, lists, tuples and dicts with string keys; NumPy
arrays and scalars go to the ``.npz`` (``allow_pickle=False``) by name. Anything else is
refused with its type.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensorsim.config import ConfigError
from tensorsim.io._support import atomic_target

__all__ = ["CaseJournal", "journal_path"]

#: Version of the journal's layout.
FORMAT = 2


def journal_path(output: Path) -> Path:
    """The journal directory ``<output>.cases`` of an output file."""
    return output.with_name(f"{output.name}.cases")


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON data; arrays and NumPy scalars go to ``arrays`` under a new name."""
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        if array.dtype.kind not in "biufcUS":
            raise TypeError(f"a case result holds an array of dtype {array.dtype}")
        key = f"a{len(arrays)}"
        arrays[key] = array
        return {"__npz__": key, "scalar": isinstance(value, np.generic)}
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("a case result holds a mapping with non-string keys")
        return {k: _encode(v, arrays) for k, v in value.items()}
    raise TypeError(
        f"a case result holds a {type(value).__name__}, which the journal cannot store"
    )


def _decode(data: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(data, list):
        return [_decode(v, arrays) for v in data]
    if not isinstance(data, dict):
        return data
    if "__tuple__" in data:
        return tuple(_decode(v, arrays) for v in data["__tuple__"])
    if "__npz__" in data:
        array = arrays[data["__npz__"]]
        return array[()] if data["scalar"] else array
    return {k: _decode(v, arrays) for k, v in data.items()}


class CaseJournal:
    """The finished cases of one sweep (file access on rank 0 only).

    Parameters
    ----------
    output
        The sweep's output file; the journal is :func:`journal_path` of it.
    config
        The run's configuration as TOML text (stored, read back by ``--restart``).
    fingerprints
        One string per case (``repr`` of the case): a restart checks that the cases are the
        same as those of the stored results.
    """

    def __init__(self, output: Path, config: str, fingerprints: list[str]) -> None:
        self.path = journal_path(output)
        self.config = config
        self.fingerprints = fingerprints
        self.results: dict[int, Any] = {}

    @staticmethod
    def stored_config(output: Path) -> str:
        """The configuration text in the journal of ``output`` (for ``--restart``).

        Raises
        ------
        FileNotFoundError
            If the sweep left no journal (it finished, or never completed a case).
        """
        path = journal_path(output) / "journal.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"--restart {output}: no journal {path.parent.name} of an unfinished sweep next "
                "to it (a finished sweep removes it; a sweep stopped before its first case "
                "leaves none: start it again)"
            )
        return str(_read(path)["config"])

    def load(self) -> None:
        """Take the results stored by an earlier run of the same cases."""
        stored = _read(self.path / "journal.json")
        if stored["fingerprints"] != self.fingerprints:
            raise ConfigError(
                f"{self.path}: its cases are not those of this configuration; start the sweep "
                "again without --restart"
            )
        for file in sorted(self.path.glob("case_*.json")):
            index = int(file.stem.removeprefix("case_"))
            arrays: dict[str, np.ndarray] = {}
            npz = file.with_suffix(".npz")
            if npz.is_file():
                with np.load(npz, allow_pickle=False) as stored_arrays:
                    arrays = {k: stored_arrays[k] for k in stored_arrays.files}
            self.results[index] = _decode(json.loads(file.read_text(encoding="utf-8")), arrays)

    def record(self, done: Mapping[int, Any]) -> None:
        """Store finished cases, each in its own files (the journal's header on first use)."""
        self.path.mkdir(exist_ok=True)
        header = self.path / "journal.json"
        if not header.is_file():
            payload = {"format": FORMAT, "config": self.config, "fingerprints": self.fingerprints}
            with atomic_target(header) as tmp:
                tmp.write_text(json.dumps(payload), encoding="utf-8")
        for index, result in done.items():
            arrays: dict[str, np.ndarray] = {}
            text = json.dumps(_encode(result, arrays))
            if arrays:
                with atomic_target(self.path / f"case_{index:05d}.npz") as tmp:
                    with tmp.open("wb") as stream:
                        np.savez(stream, **arrays)
            with atomic_target(self.path / f"case_{index:05d}.json") as tmp:
                tmp.write_text(text, encoding="utf-8")
            self.results[index] = result

    def remove(self) -> None:
        """Delete the journal (the output file holds everything now)."""
        shutil.rmtree(self.path, ignore_errors=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is not a readable sweep journal: {err}") from err
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a sweep journal of this version (format {FORMAT})")
    return stored
