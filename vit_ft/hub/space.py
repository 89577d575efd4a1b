"""The Gradio Space beside a model repo, which `vit-ft push --with_demo` writes and pushes.

A Space is a repo of type `space` that the Hub runs: `app.py` (the template `templates/space_app.py.j2`), the
`requirements.txt` it installs, and a README whose front matter says `sdk: gradio` and links the model. The app
loads the model repo by id with transformers alone, so the Space installs nothing of vit-ft.
"""

import importlib.metadata
from pathlib import Path

import jinja2
from huggingface_hub import SpaceCard, SpaceCardData

from .arguments import check_repo_id

SPACE_SUFFIX = "-demo"  # the Space of my-user/vit-digits is my-user/vit-digits-demo
SPACE_APP_TEMPLATE = Path(__file__).parent / "templates" / "space_app.py.j2"
# Copied as a file beside app.py, never imported here (hub sits below evaluation): the module imports only torch and
# works on a model loaded with trust_remote_code=True, as its docstring promises and its tests check.
ATTENTION_MAPS_CODE = Path(__file__).parents[1] / "evaluation" / "attention_maps.py"
# What the Space installs: the versions vit-ft's own models and app are written for (pyproject.toml's).
REQUIREMENTS = ("transformers>=5.17,<6", "torch>=2.4", "gradio>=6.0,<7", "numpy>=1.25", "pillow>=9")
_SPACE_CARD = """---
{{ card_data }}
---

# {{ title }}

Try the image classifier [{{ model_id }}](https://huggingface.co/{{ model_id }}) in the browser: drop an image in to
see its top classes and where the model looked. Written by `vit-ft push --with_demo`.
"""


def space_repo_id(model_repo_id: str) -> str:
    """The Space of the model repo `model_repo_id`: the same id with SPACE_SUFFIX, checked by the Hub's rule."""
    space_id = f"{model_repo_id}{SPACE_SUFFIX}"
    check_repo_id(space_id, "--with_demo's Space id (the model's repo id + '-demo')")
    return space_id


def write_space(folder: str | Path, model_repo_id: str) -> Path:
    """Writes the Space of the model repo `model_repo_id` into `folder` (created): app.py, attention_maps.py,
    requirements.txt and README.md. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    template = jinja2.Template(
        SPACE_APP_TEMPLATE.read_text(encoding="utf-8"), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    (folder / "app.py").write_text(template.render(repo_id=model_repo_id), encoding="utf-8")
    (folder / "attention_maps.py").write_bytes(ATTENTION_MAPS_CODE.read_bytes())
    (folder / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n", encoding="utf-8")
    card_data = SpaceCardData(
        title=f"{model_repo_id.split('/')[-1]} demo",
        sdk="gradio",
        sdk_version=_gradio_version(),
        app_file="app.py",
        models=[model_repo_id],
    )
    card = SpaceCard.from_template(card_data, template_str=_SPACE_CARD, title=card_data.title, model_id=model_repo_id)
    card.save(folder / "README.md")
    return folder


def _gradio_version() -> str:
    """The Gradio the Space runs: the one installed here, which the app was tried with; else the oldest it needs."""
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        return "6.0.0"
