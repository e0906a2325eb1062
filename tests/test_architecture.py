"""The layers stay layers: models/ is pure torch, data/ knows nothing of Kedro, no import cycles, small modules.

Read from the source with ``ast`` (nothing is imported), so a violation names the file and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

SRC = REPO / "src" / "lstm_lab"
MAX_LINES = 330  # "about 300": one concept per module


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


@pytest.mark.parametrize("layer, forbidden", [
    ("lstm_lab.models", ("lightning", "kedro", "mlflow", "ray", "lstm_lab.training", "lstm_lab.pipelines")),
    ("lstm_lab.data", ("kedro", "lightning", "mlflow", "ray", "lstm_lab.datasets", "lstm_lab.pipelines")),
    ("lstm_lab.training", ("kedro", "lstm_lab.pipelines", "lstm_lab.hooks")),
    ("lstm_lab.tracking", ("kedro", "lstm_lab.pipelines")),
])
def test_layers_import_only_downwards(layer, forbidden):
    offenders = [f"{path.relative_to(REPO)} imports {name}"
                 for module, path in MODULES.items() if module == layer or module.startswith(layer + ".")
                 for name in sorted(imports(path, top_level_only=False))
                 if name.split(".")[0] in forbidden or any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not offenders, offenders


def test_io_module_is_plain_stdlib():
    """Kedro datasets, the download helper and the tokenisers all write through it: it must import nothing heavy."""
    import sys

    third_party = {n for n in imports(SRC / "io.py", top_level_only=False)
                   if n.split(".")[0] not in sys.stdlib_module_names and not n.startswith("lstm_lab.errors")}
    assert not third_party, third_party


def test_no_import_cycles():
    """Module-level imports between project modules form no cycle (imports inside functions are lazy on purpose)."""
    graph = {}
    for module, path in MODULES.items():
        targets = set()
        for name in imports(path, top_level_only=True):
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if not target.startswith(node + "."):  # a package importing its own submodules is no cycle
                visit(target)
        stack.pop()

    for module in sorted(graph):
        visit(module)
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_modules_stay_small():
    big = {str(p.relative_to(REPO)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big
