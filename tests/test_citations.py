"""The project carries its own contract: code and docs cite the repository's own documents, and every document
they cite exists. (Users and maintainers get the repository, not the notes it was first written from.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {".git", ".venv", "__pycache__", ".pytest_cache", "build", "dist", "demo_outputs", "outputs"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".cfg", ".toml", ".txt", ".json"}

#: documents outside the repository that earlier drafts cited
OUTSIDE_DOCUMENTS = re.compile(r"\bSPEC\b|\bNOTES\b|\.\./shared\b|\bshared/(?:SPEC|NOTES|STYLE|data)\b")
#: a path into the project's docs folder, e.g. "docs/model.md" or "docs/images/attention.png"
DOCS_PATH = re.compile(r"\bdocs/[\w./-]+\.(?:md|png)\b")
#: a relative Markdown link target, e.g. [text](reliability.md#exit-status)
MARKDOWN_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+?)(?:#[^)]*)?\)")


def _project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_FOLDERS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile"):
            files.append(path)
    return files


def test_no_file_cites_a_document_outside_the_repository():
    this_file = Path(__file__).resolve()
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
        for path in _project_files()
        if path != this_file and "splits" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE_DOCUMENTS.search(line)
    ]
    assert offenders == [], "cite the project's docs/ instead:\n" + "\n".join(offenders)


def test_every_cited_project_document_exists():
    missing = []
    for path in _project_files():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in DOCS_PATH.finditer(text):
            if not (ROOT / match.group(0)).exists():
                missing.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
        if path.suffix == ".md":
            for match in MARKDOWN_LINK.finditer(text):
                target = match.group(1)
                if not (path.parent / target).exists() and not (ROOT / target).exists():
                    missing.append(f"{path.relative_to(ROOT)}: link to {target}")
    assert missing == [], "\n".join(missing)


def test_the_checks_catch_what_they_look_for():
    assert OUTSIDE_DOCUMENTS.search("written from SPEC section 7") and OUTSIDE_DOCUMENTS.search("(NOTES)")
    assert not OUTSIDE_DOCUMENTS.search("the spec of the release, shared by both")
    assert DOCS_PATH.search("see docs/model.md, section 4").group(0) == "docs/model.md"
    assert MARKDOWN_LINK.search("[exit status](reliability.md#exit-status)").group(1) == "reliability.md"
