"""The house's rules, checked on every run: imports go one way and no module is a god file."""

from __future__ import annotations

from tests.architecture.import_graph import ROOT, cycles, graph, modules

# Rooms from the bottom up: a module may import its own room and the rooms below it.
RUNTIME_LAYERS = [
    {"runtime.errors", "runtime.settings", "runtime.tags", "runtime.version", "runtime.atomic", "runtime.rows"},
    {"runtime.store"},
    {"runtime.service"},
    {"runtime.serving"},
    {"runtime.export"},
    {"runtime.cli", "runtime.__main__"},
]
JUPYTER_LAYERS = [
    {"jupyter_ext.capture"},
    {"jupyter_ext.actions"},
    {"jupyter_ext.kernel", "jupyter_ext.server"},
]
MAX_LINES = 500


def _layer(module: str, layers: list[set[str]]) -> int | None:
    for depth, rooms in enumerate(layers):
        if any(module == room or module.startswith(room + ".") for room in rooms):
            return depth
    return None


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_planted_cycle() -> None:
    edges = graph()
    edges["runtime.tags"] = {*edges["runtime.tags"], "runtime.store.model_store"}
    found = cycles(edges)
    assert len(found) == 1 and {"runtime.tags", "runtime.store.model_store"} <= set(found[0])


def test_rooms_import_downwards_only() -> None:
    wrong = []
    for module, deps in graph().items():
        for layers in (RUNTIME_LAYERS, JUPYTER_LAYERS):
            here = _layer(module, layers)
            if here is None:
                continue
            for dep in deps:
                there = _layer(dep, layers)
                if there is not None and there > here:
                    wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_runtime_never_imports_jupyter_ext() -> None:
    wrong = [
        f"{module} -> {dep}"
        for module, deps in graph().items()
        if module.startswith("runtime")
        for dep in deps
        if dep.startswith("jupyter_ext")
    ]
    assert wrong == []


def test_only_users_import_nbento() -> None:
    """`nbento` is the users' name for runtime + jupyter_ext; neither may lean on it."""
    edges = graph()
    assert "nbento" in edges and "jupyter_ext" in edges["nbento"]
    wrong = [f"{module} -> nbento" for module, deps in edges.items() if "nbento" in deps]
    assert wrong == []


def test_no_module_is_a_god_file() -> None:
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


def test_graph_reads_the_real_tree() -> None:
    assert (ROOT / "runtime" / "serving" / "batching.py").is_file()
    assert "runtime.serving.batching" in graph()["runtime.serving.runners"]


def test_one_place_builds_batchers() -> None:
    """`AdaptiveBatcher(...)` is called only by `Batchers.get` (runtime/serving/batching.py):
    a runner's methods and a service's batchable APIs get their batchers the same way."""
    import ast

    callers = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "AdaptiveBatcher"
            ):
                callers.append(name)
    assert callers == ["runtime.serving.batching"]
