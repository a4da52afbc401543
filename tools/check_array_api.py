"""Lint: keep tensorsim's kernels backend-neutral (NumPy, CuPy, PyTorch, array_api_strict).

Usage: ``python tools/check_array_api.py [ROOT]`` (default ROOT: the ``tensorsim`` package).

Every ``.py`` file under ROOT is checked, except the allow-list below and modules whose
docstring contains "NumPy-only by design". Three things are flagged:

1. any use of a name bound to numpy (``np.``, ``numpy.``, ``from numpy import ...``), except
   ``np.random.Generator`` and ``np.random.default_rng``, and ``np.ndarray`` inside
   annotations or ``isinstance``/``issubclass``;
2. a call ``xp.<creation>(...)`` (``zeros``, ``ones``, ``empty``, ``full``, ``eye``,
   ``arange``, ``linspace``, ``asarray``) without a ``device=`` keyword. The ``*_like``
   functions take the device of their input and are not flagged;
3. an import of ``array_api_compat`` (only ``tensorsim/_array_api.py`` talks to it).

Each finding is printed as ``path:line: message``; the exit status is 1 if there is any.
Modelled on SciPy's ``tools/linting/check_nondefault_device.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOWED_FILES = {"_array_api.py", "log.py", "parallel.py", "testing.py"}
ALLOWED_DIRS = {"io", "config"}
ALLOWED_ALWAYS = {"numpy.random.Generator", "numpy.random.default_rng"}
ALLOWED_IN_TYPES = {"numpy.ndarray"}
CREATION = {"zeros", "ones", "empty", "full", "eye", "arange", "linspace", "asarray"}
EXEMPT_PHRASE = "NumPy-only by design"


def _dotted(node: ast.AST) -> list[str] | None:
    """Return ``["a", "b", "c"]`` for ``a.b.c``, or ``None`` if it is not a plain chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def check_tree(tree: ast.Module) -> list[tuple[int, str]]:
    """Return ``(line, message)`` for each finding in a parsed module."""
    bound: dict[str, str] = {}  # local name -> dotted numpy path
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        if any(m.split(".")[0] == "array_api_compat" for m in modules):
            found.append((node.lineno, "array_api_compat imported (use tensorsim._array_api)"))
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "numpy":
                    bound[a.asname or "numpy"] = a.name if a.asname else "numpy"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "numpy":
            bound.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    typing_ids: set[int] = set()  # nodes inside annotations and isinstance/issubclass types
    for node in ast.walk(tree):
        types = []
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            types.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            types.append(node.returns)
        elif isinstance(node, ast.Call) and _dotted(node.func) in (["isinstance"], ["issubclass"]):
            types.extend(node.args[1:2])
        typing_ids.update(id(sub) for t in types for sub in ast.walk(t))

    def visit(node: ast.AST) -> None:
        chain = _dotted(node) if isinstance(node, ast.Attribute | ast.Name) else None
        if chain and chain[0] in bound and isinstance(node.ctx, ast.Load):
            path = ".".join([bound[chain[0]], *chain[1:]])
            ok = path in ALLOWED_ALWAYS or (path in ALLOWED_IN_TYPES and id(node) in typing_ids)
            if not ok:
                found.append((node.lineno, f"bare numpy use `{path}` (use the xp namespace)"))
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = _dotted(node.func.value)
            kwargs = {k.arg for k in node.keywords}
            if owner and owner[-1] == "xp" and node.func.attr in CREATION:
                if "device" not in kwargs and None not in kwargs:  # None: **kwargs
                    found.append((node.lineno, f"xp.{node.func.attr}(...) without device="))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def main(argv: list[str] | None = None) -> int:
    """Check every module under the root given in ``argv``; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "tensorsim"
    findings = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.as_posix() in ALLOWED_FILES or rel.parts[0] in ALLOWED_DIRS:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as err:
            findings.append(f"{path}:{err.lineno}: syntax error: {err.msg}")
            continue
        if EXEMPT_PHRASE in (ast.get_docstring(tree) or ""):
            continue
        findings += [f"{path}:{line}: {msg}" for line, msg in check_tree(tree)]
    for line in findings:
        print(line)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
