"""The code's structure: no import cycle among the project's modules, and the sweep's logic free of Lightning.

Every import statement counts, also those inside functions and under ``TYPE_CHECKING``: a cycle
hidden there still ties two modules together.
"""

import ast
from pathlib import Path

from tests.conftest import PROJECT

PACKAGES = ("sweeps", "components")
#: What the plain modules must not import: they are tested directly, and run in the trial's child.
NOT_IN_SWEEPS = ("lightning_app", "streamlit", "components")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The names of everything ``path`` imports (the module it names, or the submodule a ``from`` names)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return names


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {i for i in imported(path, name, known) if i in known and i != name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once, as the modules along it."""
    found, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = path[path.index(node) :]
            if frozenset(cycle) not in done:
                done.add(frozenset(cycle))
                found.append([*cycle, node])
            return
        if node in visited:
            return
        for target in sorted(edges[node]):
            visit(target, [*path, node])
        visited.add(node)

    visited: set[str] = set()
    for start in sorted(edges):
        visit(start, [])
    return found


def test_no_import_cycle_among_the_projects_modules():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]


def test_the_sweeps_logic_imports_no_lightning_no_streamlit_and_no_adapter():
    known = modules()
    for name, path in known.items():
        if not name.startswith("sweeps"):
            continue
        bad = {i for i in imported(path, name, known) if i.split(".")[0] in NOT_IN_SWEEPS}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_the_graph_sees_the_imports_that_matter():
    edges = graph()
    assert "sweeps.record" in edges["sweeps.tally"]
    assert "components.fixes" in edges["components.page"], "from components import fixes: the submodule"
    assert edges["sweeps.record"] == {"sweeps.optuna_internals"}, "the trial record reads Optuna, nothing of Sweeps"
    assert edges["sweeps.optuna_internals"] == set()
