import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    command = re.search(r"```bash\n([^\n]+)\n```", section).group(1)
    assert command.startswith("pip install") and "pytest" in command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci


def test_the_readme_sections_come_in_a_users_order():
    headings = re.findall(r"^## (.+)$", (ROOT / "README.md").read_text(), re.M)
    assert headings == [
        "Requirements",
        "Install",
        "Quickstart",
        "Fine-tune on your own data",
        "Recipes",
        "What else it does",
        "Results",
        "Run the tests",
    ]
