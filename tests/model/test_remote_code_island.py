"""The model package ships as remote code: it imports nothing from the rest of vit_ft and no private name of torch or
transformers."""

import ast
from pathlib import Path

import vit_ft.model

MODEL_PACKAGE = Path(vit_ft.model.__file__).parent
# torch's module internals (hook registries, `Module` plumbing): the public API is `torch.nn`.
_INTERNAL_MODULES = ("torch.nn.modules",)


def _is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")) or module.startswith(_INTERNAL_MODULES)


def _violations(source: str) -> list[str]:
    """What in `source` reaches outside the model package or into torch's and transformers' private names."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] == "vit_ft":
                found.append(f"line {node.lineno}: imports {module} by absolute name")
            if node.level > 1:
                found.append(f"line {node.lineno}: imports {'.' * node.level}{module}, outside the model package")
            if _is_private(module):
                found.append(f"line {node.lineno}: imports the private module {module}")
            found += [
                f"line {node.lineno}: imports the private name {alias.name} from {module}"
                for alias in node.names
                if alias.name.startswith("_")
            ]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "vit_ft":
                    found.append(f"line {node.lineno}: imports {alias.name}")
                if _is_private(alias.name):
                    found.append(f"line {node.lineno}: imports the private module {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            # `self.config._attn_implementation` is how transformers' own ViT reads the attention choice.
            if isinstance(root, ast.Name) and root.id in ("torch", "nn", "transformers", "init"):
                found.append(f"line {node.lineno}: uses the private name {ast.unparse(node)}")
    return found


def test_the_check_sees_each_kind_of_violation():
    bad = (
        "from vit_ft.data import x\nfrom ..training import y\nimport vit_ft.hub\n"
        "from torch.nn.modules import module as m\nfrom torch.utils._pytree import tree_map\n"
        "from transformers.utils import _private\nh = torch.nn.modules.module._global_forward_hooks\n"
    )
    assert len(_violations(bad)) == 7
    assert _violations("from .configuration_vit_ft import ViTConfig\nx = self.config._attn_implementation\n") == []


def test_model_package_imports_only_itself_torch_and_public_transformers():
    files = sorted(MODEL_PACKAGE.glob("*.py"))
    assert {path.name for path in files} >= {"__init__.py", "configuration_vit_ft.py", "modeling_vit_ft.py"}
    problems = [f"{path.name} {problem}" for path in files for problem in _violations(path.read_text())]
    assert not problems, "\n".join(problems)
