"""The shape of the package, checked from its source: layers import only downward, no import cycle,
one module owns stage names, views and commands compute nothing.

The layers are the README's "How the code is laid out"; a change here is a change there.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tracegpt"

# Lowest first: a module may import its own layer and the ones before it, never a later one.
LAYERS = [
    ("base", ["errors", "files", "stages", "texts"]),
    ("model", ["taps", "model"]),
    ("loading", ["tokenizer", "weights", "embedded", "checkpoints", "loader"]),
    ("running", ["tracer", "costs", "sampling", "generation"]),
    ("analysis", ["analysis"]),
    ("export", ["export"]),
    ("views", ["views"]),
    ("commands", ["commands"]),
    ("entry points", ["api", "cli", "__main__", "training", "__init__"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    inside = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, (_, tops) in enumerate(LAYERS) if inside in tops)


def sources() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str, tree: ast.Module) -> set[str]:
    """The tracegpt modules this one imports, anywhere in it (lazy imports inside functions included)."""
    package = module if tree_is_package(module) else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tracegpt")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("tracegpt"):
                continue
            for alias in node.names:  # `from . import stages` names a module; `from .x import y`, a name in x
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return found - {module}


def tree_is_package(module: str) -> bool:
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


SOURCES = sources()
GRAPH = {m: imports(m, t) for m, t in SOURCES.items()}


def test_every_module_has_a_layer():
    for module in SOURCES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_imports_go_down_the_layers(module):
    mine = layer_of(module)
    for other in GRAPH[module]:
        assert layer_of(other) <= mine, (f"{module} ({LAYERS[mine][0]}) imports {other} "
                                         f"({LAYERS[layer_of(other)][0]})")


def test_no_import_cycle():
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for other in GRAPH.get(module, ()):
            visit(other)
        path.pop()
        done.add(module)

    for module in GRAPH:
        visit(module)


def docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


@pytest.mark.parametrize("module", sorted(m for m in SOURCES if m != "tracegpt.stages"))
def test_only_stages_builds_or_splits_stage_names(module):
    tree = SOURCES[module]
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            assert "blocks." not in node.value, f"{module}:{node.lineno} spells a stage name: {node.value!r}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "split", "rsplit", "partition", "rpartition") and node.args:
            arg = node.args[0]
            assert not (isinstance(arg, ast.Constant) and arg.value == "."), \
                f"{module}:{node.lineno} splits a dotted name; use tracegpt.stages"


@pytest.mark.parametrize("module", sorted(m for m in SOURCES if m.startswith(("tracegpt.views", "tracegpt.commands"))))
def test_views_and_commands_compute_nothing(module):
    # Numbers come from the domain: a view draws finished data, a command parses and hands over.
    outside = set()
    for node in ast.walk(SOURCES[module]):
        if isinstance(node, ast.Import):
            outside |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            outside.add(node.module.split(".")[0])
    assert not outside & {"torch", "numpy"}, f"{module} imports {outside & {'torch', 'numpy'}}"
