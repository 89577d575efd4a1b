"""What the repository promises about itself: vit_ft uses other libraries' public names only, every distribution it
imports is declared, the vit_ft names its text cites exist, and no generated file is committed."""

import ast
import importlib.metadata
import re
import shutil
import subprocess
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


def test_every_file_of_vit_ft_that_is_not_a_module_ships_as_package_data():
    """A wheel takes a package's modules; any other file (the model card's templates) only through package-data."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    shipped = {
        path
        for package, patterns in setuptools["package-data"].items()
        for pattern in patterns
        for path in ROOT.joinpath(*package.split(".")).glob(pattern)
    }
    data = {path for path in PACKAGE.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")}
    assert sorted(str(path.relative_to(ROOT)) for path in data - shipped) == []


# Private-looking names that the other library documents as its API: onnxscript's rewriter names a pattern's outputs
# with `_outputs=[...]`.
_DOCUMENTED = {"_outputs"}
# The one module that says why it uses transformers' internals; the model package reads its config's attention
# implementation as transformers' own models do (tests/model/test_remote_code_island.py checks that package).
_EXEMPT = (PACKAGE / "transformers_internals.py", PACKAGE / "model")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own_names(trees: list[ast.AST]) -> set[str]:
    """Every name the code itself binds: functions, classes, parameters, variables, its objects' attributes."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if getattr(node.value, "id", None) in ("self", "cls"):  # its own objects' attributes only
                    names.add(node.attr)
    return names


def _foreign_private_names(tree: ast.AST, own: set[str]) -> set[str]:
    """The private names of other libraries `tree` uses: attributes it does not define, `super()`'s private
    attributes, and private keyword arguments."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            from_super = isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "super"
            if from_super or node.attr not in own:
                found.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg is not None and _private(node.arg):
            found.add(node.arg)
    return found - _DOCUMENTED


def _code_files() -> list[Path]:
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    return sorted(path for path in files if not any(path == exempt or exempt in path.parents for exempt in _EXEMPT))


def test_vit_ft_and_its_scripts_use_no_private_name_of_another_library():
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in [*PACKAGE.rglob("*.py"), *_code_files()]}
    own = _own_names(list(trees.values()))
    used = {}
    for path in _code_files():
        relative = str(path.relative_to(ROOT))
        names = _foreign_private_names(trees[path], own)
        if names:
            used[relative] = sorted(names)
    assert used == {}, "use a public name, or put the private one in vit_ft/transformers_internals.py, saying why"


def test_the_private_name_check_sees_each_kind_of_use():
    code = """
class Formatter(argparse.HelpFormatter):
    def _get_help_string(self, action):
        return super()._get_help_string(action)

def f(commands: argparse._SubParsersAction, model):
    model.config._attn_implementation = "eager"
    trainer.save_model(_internal_call=True)
    return self._own, model._own
"""
    tree = ast.parse(code)
    assert _foreign_private_names(tree, _own_names([tree]) | {"_own"}) == {
        "_get_help_string",
        "_SubParsersAction",
        "_attn_implementation",
        "_internal_call",
    }


# Files that runs, tests and tools write: ONNX Runtime's profiler dumps (written into the working directory, wherever
# that is), bytecode, packaging, caches, run folders.
GENERATED = (
    "onnxruntime_profile__2026-01-01_00-00-00.json",
    "tests/export/onnxruntime_profile__2026-01-01_00-00-00.json",
    "vit_ft/__pycache__/cli.cpython-311.pyc",
    "vit_ft.egg-info/PKG-INFO",
    "build/lib/vit_ft/cli.py",
    ".pytest_cache/README.md",
    ".ruff_cache/CACHEDIR.TAG",
    "outputs/digits/model.safetensors",
)


def _git(*args: str) -> list[str]:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode not in (0, 1):  # 1: check-ignore found nothing to report
        raise RuntimeError(result.stderr)
    return result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_no_generated_file_is_committed_and_gitignore_keeps_them_out():
    assert _git("check-ignore", "--no-index", *GENERATED) == list(GENERATED)
    assert _git("check-ignore", "--no-index", *_git("ls-files")) == []  # tracked, yet a pattern says generated
