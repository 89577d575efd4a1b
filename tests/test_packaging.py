"""What the repository promises about itself: the vit_ft names its text cites exist."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vit_ft"
# A dotted vit_ft name: a module (`vit_ft.training.distillation`), maybe followed by a name in it (`.soft_loss`).
_CITED = re.compile(r"\bvit_ft(?:\.[A-Za-z_]\w*)+")


def _texts() -> list[Path]:
    """The files that cite vit_ft's modules to a reader: the package's code, the docs, the scripts and recipes."""
    files = [*PACKAGE.rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "scripts").iterdir()]
    return sorted([*files, *(ROOT / "recipes").rglob("*.yaml")])


def _module_file(parts: list[str]) -> Path | None:
    path = ROOT.joinpath(*parts)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_names(module: Path) -> set[str]:
    names = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            assigned = {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}
            names |= assigned
            if assigned == {"__all__"}:  # the public names, those imported on first use among them
                names.update(item.value for item in node.value.elts if isinstance(item, ast.Constant))
    return names


def _missing(cited: str) -> bool:
    """Whether `cited` names no module of vit_ft, or a name its module does not define."""
    parts = cited.split(".")
    for end in range(len(parts), 0, -1):
        module = _module_file(parts[:end])
        if module is not None:
            rest = parts[end:]
            return bool(rest) and rest[0] not in _top_level_names(module)
    return True


@pytest.mark.parametrize("path", _texts(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_vit_ft_name_the_text_cites_exists(path):
    cited = sorted(set(_CITED.findall(path.read_text(encoding="utf-8"))))
    assert [name for name in cited if _missing(name)] == []


def test_the_citation_check_sees_a_module_that_moved():
    assert _missing("vit_ft.distillation") and _missing("vit_ft.model_card") and _missing("vit_ft.corruptions")
    assert _missing("vit_ft.training.distillation.no_such_function")
    assert not _missing("vit_ft.training.distillation.soft_distillation_loss")
    assert not _missing("vit_ft.data.corruptions") and not _missing("vit_ft.PRESETS")
