"""The package's layers: every import inside vit_ft points down, and no module reaches itself through others
(docs/architecture.md draws them)."""

import ast
from pathlib import Path

import pytest

import vit_ft

PACKAGE = Path(vit_ft.__file__).parent

# Each part of vit_ft, and the parts it imports. The model package and the output-directory package are the
# foundation; the top (recipe, train, cli, the package's own __init__) may import anything. Inside a part, the
# modules import one another one way too (`test_no_module_imports_itself_through_others`).
ALLOWED = {
    "model": set(),
    "output_dir": set(),
    "transformers_internals": set(),
    "checkpoint_integrity": {"output_dir"},
    "checkpoints": {"model", "output_dir"},
    "data": {"output_dir"},
    "export": {"model", "output_dir", "checkpoints", "data"},
    "hub": {"output_dir", "export"},
    "training": {"model", "output_dir", "checkpoint_integrity", "checkpoints", "data", "hub"},
    "evaluation": {"output_dir", "checkpoints", "data", "export"},
    "pretraining": {"model", "data", "evaluation"},
}
TOP = {"recipe", "train", "pretrain", "cli", "__init__"}


def _part(module: str) -> str:
    """`vit_ft.training.lora` -> `training`; `vit_ft` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every vit_ft import in the file at `path`, relative ones resolved."""
    module = ".".join(("vit_ft", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                # `from . import x` names submodules: count each as imported.
                targets = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            else:
                targets = [node.module or ""]
            found += [(node.lineno, target) for target in targets if target.split(".")[0] == "vit_ft"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "vit_ft"]
    return found


def _module(path: Path) -> str:
    """`vit_ft/data/arguments.py` -> `vit_ft.data.arguments`; a package's `__init__.py` -> the package."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("vit_ft", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _circles() -> list[list[str]]:
    """
    Every import circle among vit_ft's modules, each as the modules in import order, the first repeated at the end.
    Imports under TYPE_CHECKING and inside functions count: a circle is a knot a reader has to untie either way.
    """
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        targets = set()
        for _, target in _imported_modules(path):
            while target not in modules and "." in target:  # `from .x import name` names module x, or a package
                target = target.rsplit(".", 1)[0]
            targets.add(target)
        graph[module] = sorted(targets - {module})
    circles, done = [], set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circles.append(trail[trail.index(module) :] + [module])
            return
        if module in done:
            return
        for target in graph.get(module, []):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return circles


def _wrong_way(path: Path) -> list[str]:
    source = _part(".".join(("vit_ft", *path.relative_to(PACKAGE).with_suffix("").parts)))
    if source in TOP:
        return []
    allowed = ALLOWED[source] | {source}
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} ({source}) imports {target}"
        for line, target in _imported_modules(path)
        if _part(target) not in allowed
    ]


def test_every_part_of_the_package_has_a_layer():
    parts = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if path.suffix == ".py" or (path / "__init__.py").is_file()
    }
    assert parts == set(ALLOWED) | TOP


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    if "metric_modules" in path.parts:  # evaluate loads these by path; they import only evaluate and sklearn
        return
    assert _wrong_way(path) == []


def test_no_module_imports_itself_through_others():
    assert _circles() == []


def test_the_check_sees_an_import_that_points_up(tmp_path, monkeypatch):
    fake = tmp_path / "vit_ft"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text("from ..training.trainer import ViTTrainer\nfrom ..output_dir import X\n")
    (fake / "model").mkdir()
    (fake / "model" / "bad.py").write_text("from vit_ft.checkpoints import reading\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    assert _wrong_way(fake / "data" / "bad.py") == ["vit_ft/data/bad.py:1 (data) imports vit_ft.training.trainer"]
    assert _wrong_way(fake / "model" / "bad.py") == ["vit_ft/model/bad.py:1 (model) imports vit_ft.checkpoints"]


def test_the_check_sees_a_circle_inside_a_package(tmp_path, monkeypatch):
    fake = tmp_path / "vit_ft"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "__init__.py").write_text("")
    (fake / "data" / "arguments.py").write_text("from .corruptions import corruption_list\n")
    (fake / "data" / "corruptions.py").write_text("from .transforms import decode_image\n")
    (fake / "data" / "transforms.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .arguments import AugmentationArguments\n"
    )
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    assert _circles() == [
        ["vit_ft.data.arguments", "vit_ft.data.corruptions", "vit_ft.data.transforms", "vit_ft.data.arguments"]
    ]
