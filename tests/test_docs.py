"""The user docs (README.md, each folder's README.md) do what they say: the Python block runs, the GPU
commands name real scripts and configs with valid options, every link and every configs/,
weights/, scripts/ path exists, and no page reads like a work log."""
from __future__ import annotations

import ast
import glob
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

README = REPO / "README.md"
# The pages a user reads: the top level, one per folder beside its code, and the weights' pages.
USER_DOCS = sorted({README, *REPO.glob("*/README.md"), *REPO.glob("weights/*/README.md")})
# The Python block of the README: the one that imports the API.
API_BLOCK = re.compile(r"```python\n((?:(?!```).)*?from srlab\.api import(?:(?!```).)*?)```", re.S)


def _rel(path) -> str:
    return str(path.relative_to(REPO))


def _api_block() -> str:
    blocks = API_BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) == 1, "README.md should hold one ```python block that imports srlab.api"
    return blocks[0]


def _sections(heading: str) -> list[str]:
    """The text under every '## <heading>...' (or deeper) heading of the user docs, to the next
    heading of the same or a higher level."""
    found = []
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(rf"^(#{{2,}}) {re.escape(heading)}.*$", text, re.M):
            level = len(match.group(1))
            rest = text[match.end():]
            end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
            found.append(rest[: end.start()] if end else rest)
    return found


def _strip_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _expand_braces(path: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [p for option in match.group(1).split(",")
            for p in _expand_braces(path[: match.start()] + option + path[match.end():])]


# ------------------------------------------------------------------------------- the Python block
def test_the_readme_python_block_compiles_and_imports_only_what_exists():
    code = _api_block()
    tree = ast.parse(code)  # a syntax error fails here
    compile(tree, "README.md", "exec")
    imported = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules, names = [node.module], [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [alias.name for alias in node.names], []
        else:
            continue
        for module in modules:
            root = module.split(".")[0]
            assert root in ("srlab", "torch"), f"the README's block imports {module}: only srlab.* (and torch)"
            if root != "srlab":
                continue
            loaded = importlib.import_module(module)
            for name in names:
                assert hasattr(loaded, name), f"README.md: `from {module} import {name}`: {module} has no {name}"
                imported += 1
    assert imported, "the README's block should show the API: from srlab.api import ..."
    for path in re.findall(r"\"((?:weights|configs)/[^\"]+)\"", code):
        assert (REPO / path).exists(), f"the README's block names {path}, which does not exist"


@pytest.mark.slow
def test_the_readme_python_block_runs_as_written(shared_data):
    """The README's API block, copied out of the README and run in a fresh interpreter from the
    repository root (~25 s: it trains; its calls are covered one by one by faster tests)."""
    from srlab.data import load_image

    code = _api_block()
    try:
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                env={**os.environ, "SR_DATA_ROOT": str(shared_data)})
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.strip().splitlines()
        assert lines[0] == "[2, 3, 4]" and lines[1].endswith(" 5")  # Set5: five per-image records
        assert load_image(REPO / "runs" / "api_demo" / "butterfly_x2.png").shape == (512, 512, 3)
    finally:
        shutil.rmtree(REPO / "runs" / "api_demo", ignore_errors=True)


# ------------------------------------------------------------------------------- the GPU commands
def _gpu_commands() -> list[list[str]]:
    sections = _sections("On a GPU")
    assert sections, "a user doc should have an 'On a GPU' section with the GPU commands"
    blocks = [b for s in sections for b in re.findall(r"```bash\n(.*?)```", s, re.S)]
    assert blocks, "the 'On a GPU' section should hold its commands in ```bash blocks"
    # Budget variables ($ITERS, ...) stand for a number, the loop variable ${k} for a branch.
    text = re.sub(r"\$\{?k\}?", "0", re.sub(r"\$\{?[A-Z_]+\}?", "5000", "\n".join(blocks).replace("\\\n", " ")))
    commands = [c for line in text.splitlines() for c in re.split(r"&&|;|\bdo\b|\bdone\b", line.split("#")[0])]
    return [shlex.split(c) for c in commands if c.strip()]


def test_the_gpu_commands_name_real_scripts_configs_and_valid_options():
    """Every command of the GPU section: its scripts and test files exist, and each --config loads
    with its --opt values (the budget variables set to a number), so GPU time is not spent on a typo."""
    from srlab.config import load_config
    from srlab.registry import METHODS

    configs_checked = 0
    for words in _gpu_commands():
        for word in words:
            if word.startswith(("scripts/", "tests/")):
                assert (REPO / word).is_file(), f"{' '.join(words)}: {word} does not exist"
        scripts = [w for w in words if w.startswith("scripts/")]
        configs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--config"]
        opts = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--opt"]
        for config in configs:
            assert (REPO / config).is_file(), f"{' '.join(words)}: {config} does not exist"
            # train.py / test.py apply their --opt to their one config; a benchmark's --opt are its own.
            benchmark = any("benchmark_" in s for s in scripts)
            load_config(REPO / config, [] if benchmark else opts, METHODS)
            configs_checked += 1
    assert configs_checked, "the GPU section names no --config"


# ------------------------------------------------------------------------------- links and paths
@pytest.mark.parametrize("doc", USER_DOCS, ids=_rel)
def test_every_relative_link_resolves(doc):
    text = _strip_code(doc.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        assert file.exists(), f"{_rel(doc)}: link to {target}: no such file"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", _strip_code(file.read_text(encoding="utf-8")), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{_rel(doc)}: link to {target}: no such heading"


@pytest.mark.parametrize("doc", USER_DOCS, ids=_rel)
def test_every_named_configs_weights_and_scripts_path_exists(doc):
    """configs/..., weights/..., scripts/... paths named anywhere in the page (prose and code),
    relative to the repository root; braces ({a,b}) and globs (*) are expanded."""
    text = doc.read_text(encoding="utf-8").replace("${k}", "{0,1,2}")
    missing = []
    for match in re.finditer(r"(?<![\w/.$-])(?:configs|weights|scripts)/[\w.*/{},-]*", text):
        path = match.group(0).rstrip(".,")
        for expanded in _expand_braces(path):
            if "*" in expanded:
                if not glob.glob(str(REPO / expanded)):
                    missing.append(expanded)
            elif not (REPO / expanded).exists():
                missing.append(expanded)
    assert not missing, f"{_rel(doc)} names paths that do not exist: {sorted(set(missing))}"


# ------------------------------------------------------------------------------- no work-log language
LOG_LANGUAGE = [
    (re.compile(r"\bissues?\s+#?\d{1,2}\b", re.I), "an issue number"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "a date"),
    (re.compile(r"\b(this|that|an earlier|the next|a later|earlier|previous) session\b", re.I), "session language"),
    (re.compile(r"\bdevelopment (machine|VM|CPU)\b", re.I), "'the development machine'"),
    (re.compile(r"\bGPU queue\b|\bqueue item\b|\bthe knob\b", re.I), "work-log language"),
]


@pytest.mark.parametrize("doc", USER_DOCS, ids=_rel)
def test_user_docs_hold_no_issue_numbers_dates_or_session_language(doc):
    text = doc.read_text(encoding="utf-8")
    found = [f"{what}: {m.group(0)!r} (line {text.count(chr(10), 0, m.start()) + 1})"
             for pattern, what in LOG_LANGUAGE for m in pattern.finditer(text)]
    assert not found, f"{_rel(doc)}: {found}"


def test_the_readme_stays_a_users_page():
    """README.md is the user's entry point (at most 300 lines); each family has its page beside its code."""
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300
    for family in ("mzsr", "asymsr", "classsr", "common"):
        assert (REPO / family / "README.md").is_file()
        assert f"({family}/README.md)" in README.read_text(encoding="utf-8"), f"README.md should link {family}/README.md"
