"""What the repository promises about itself: every distribution vit_ft imports is declared, and the vit_ft names
its text cites exist."""

import ast
import importlib.metadata
import re
import sys
import tomllib
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


def _distribution(requirement: str) -> str:
    """`huggingface_hub>=1.0` -> `huggingface-hub`: a requirement's distribution, normalised as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group()).lower()


def _imported_packages(path: Path) -> set[str]:
    """The top-level packages the file at `path` imports, other than its own and the standard library's."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module.split(".")[0])
    return {name for name in found if name != "vit_ft" and name not in sys.stdlib_module_names}


def test_every_distribution_vit_ft_imports_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"].values()
    declared = {_distribution(requirement) for requirement in [*project["dependencies"], *sum(extras, [])]}
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for package in _imported_packages(path):
            distributions = {_distribution(name) for name in providers.get(package, [package])}
            if not distributions & declared:
                undeclared.setdefault(package, str(path.relative_to(ROOT)))
    assert undeclared == {}, "imported by vit_ft but not declared in pyproject.toml (package: first file)"
