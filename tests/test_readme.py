import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(pip install [^\n]+)\n```", readme)
    assert len(commands) == 2, "the README's set-up section has exactly two commands: main job and tests"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
