"""The package's layers: each module imports only from its own layer or the layers below, and no
import cycle exists anywhere in ``rpo_jax`` -- lazy imports inside functions and ``TYPE_CHECKING``
imports included, read from the source (AST), so nothing is imported to check it.

The order, bottom first (docs/ARCHITECTURE.md draws it): ``errors``, ``core`` (pure maths),
``envs``, ``config``, ``algorithms``, ``training``, ``runs``, ``analysis``, ``cli``, and the
package's own ``__init__`` (the public names) on top, which no module may import.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rpo_jax"
LAYERS = ("errors", "core", "envs", "config", "algorithms", "training", "runs", "analysis", "cli")


def modules() -> dict[str, pathlib.Path]:
    """``rpo_jax.x.y`` -> its file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: pathlib.Path, known: dict) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of a package module in ``path``, lazy ones too."""
    base = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(base.split(".")[: len(base.split(".")) - node.level + 1] + [module]).strip(".")
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # an attribute of a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno))
    return found


def layer(module: str) -> int:
    """The layer of a package module; the package's ``__init__`` is above every layer."""
    parts = module.split(".")
    if len(parts) == 1:
        return len(LAYERS)
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module} belongs to no layer; add its subpackage to LAYERS in the right place")
    return LAYERS.index(parts[1])


GRAPH = {name: imports(name, path, modules()) for name, path in modules().items()}


def test_every_module_belongs_to_a_layer():
    for name in GRAPH:
        layer(name)
    flat = [p.name for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "errors")]
    assert not flat, f"modules outside the layers: {flat}"


def test_no_import_goes_up_the_layers():
    upward = [
        f"{name} (layer {LAYERS[layer(name)] if layer(name) < len(LAYERS) else 'package'}) imports {target} "
        f"(layer {LAYERS[layer(target)] if layer(target) < len(LAYERS) else 'package'}) at line {line}"
        for name, targets in GRAPH.items()
        for target, line in targets
        if layer(target) > layer(name) or (layer(target) == len(LAYERS) and name != target)
    ]
    assert not upward, "\n".join(upward)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each an import cycle)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle():
    cycles = strongly_connected({name: {t for t, _ in targets} for name, targets in GRAPH.items()})
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "graph, cycles",
    [({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]), ({"a": {"b"}, "b": {"c"}, "c": set()}, [])],
)
def test_the_cycle_finder_finds_cycles(graph, cycles):
    assert strongly_connected(graph) == cycles


def test_the_import_reader_sees_lazy_and_type_checking_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rpo_jax.cli import main\n"
        "def f():\n    from rpo_jax.core import gae\n"
    )
    known = {"rpo_jax.cli": None, "rpo_jax.core": None, "rpo_jax.core.gae": None, "rpo_jax.core.m": None}
    assert imports("rpo_jax.core.m", source, known) == [("rpo_jax.cli", 3), ("rpo_jax.core.gae", 5)]


def test_every_public_name_imports_from_the_top():
    import rpo_jax

    for name in rpo_jax.PUBLIC:
        value = getattr(rpo_jax, name)
        assert getattr(value, "__name__", name) == name, name
    assert callable(rpo_jax.make_trainer) and callable(rpo_jax.load_policy)
    with pytest.raises(AttributeError):
        rpo_jax.no_such_name  # noqa: B018


def test_the_module_tables_list_every_module_and_agree():
    """docs/ARCHITECTURE.md's module table names every module (or its folder); README's is a copy."""
    root = PACKAGE.parent
    block = lambda text: text[text.index("<!-- layout -->") : text.index("<!-- end layout -->")]  # noqa: E731
    table = block((root / "docs" / "ARCHITECTURE.md").read_text())
    assert table == block((root / "README.md").read_text()), "copy docs/ARCHITECTURE.md's module table to README"
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if path.name in ("__init__.py", "__main__.py"):
            continue
        named = f"`{rel}`" in table or f"`{path.name}`" in table
        assert named, f"{rel} is missing from docs/ARCHITECTURE.md's module table"
