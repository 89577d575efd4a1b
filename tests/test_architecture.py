"""The package's layers: every import inside vit_ft points down (docs/architecture.md draws them)."""

import ast
from pathlib import Path

import pytest

import vit_ft

PACKAGE = Path(vit_ft.__file__).parent

# Each part of vit_ft, and the parts it may import. The model package and the output-directory owner are the
# foundation; the top (recipe, train, cli, the package's own __init__) may import anything.
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
    "evaluation": {"model", "output_dir", "checkpoints", "data", "export"},
    "pretraining": {"model", "output_dir", "data", "evaluation"},
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


def _wrong_way(path: Path) -> list[str]:
    source = _part(".".join(("vit_ft", *path.relative_to(PACKAGE).with_suffix("").parts)))
    if source in TOP:
        return []
    allowed = ALLOWED[source] | {source}
    return [f"{path.relative_to(PACKAGE.parent)}:{line} ({source}) imports {target}"
            for line, target in _imported_modules(path) if _part(target) not in allowed]  # fmt: skip


def test_every_part_of_the_package_has_a_layer():
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if path.suffix == ".py" or (path / "__init__.py").is_file()}  # fmt: skip
    assert parts == set(ALLOWED) | TOP


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    if "metric_modules" in path.parts:  # evaluate loads these by path; they import only evaluate and sklearn
        return
    assert _wrong_way(path) == []


def test_the_check_sees_an_import_that_points_up(tmp_path, monkeypatch):
    fake = tmp_path / "vit_ft"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text("from ..training.trainer import ViTTrainer\nfrom ..output_dir import X\n")
    (fake / "model").mkdir()
    (fake / "model" / "bad.py").write_text("from vit_ft.checkpoints import reading\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    assert _wrong_way(fake / "data" / "bad.py") == ["vit_ft/data/bad.py:1 (data) imports vit_ft.training.trainer"]
    assert _wrong_way(fake / "model" / "bad.py") == ["vit_ft/model/bad.py:1 (model) imports vit_ft.checkpoints"]
