"""The README stays the front door, and the docs stay whole: every protocol name documented, every link alive.

Reads files only: no sidecar process, no native code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [README, *DOCS]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), with an optional "title"; the text may hold code spans.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks: a `# comment` in a shell block is no heading."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def headings(path: Path) -> list[str]:
    return [m.group(2) for line in prose_lines(path) if (m := HEADING.match(line))]


def plain(heading: str) -> str:
    """A heading's text as rendered: links by their text, code spans by their content."""
    heading = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return CODE_SPAN.sub(r"\2", heading)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped except hyphens, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", plain(heading).strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor the file's headings produce; GitHub numbers repeats: x, x-1, x-2."""
    seen: Counter[str] = Counter()
    result = set()
    for heading in headings(path):
        base = slug(heading)
        result.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return result


def links(path: Path) -> list[str]:
    # Code spans go first: `[x](y)` shown as code is an example, not a link.
    return [m.group(1) for line in prose_lines(path) for m in LINK.finditer(CODE_SPAN.sub("", line))]


def code_spans(path: Path) -> set[str]:
    return {m.group(2).strip() for line in prose_lines(path) for m in CODE_SPAN.finditer(line)}


def protocol_names() -> list[str]:
    """Every method (client notifications `$/cancelRequest` and `exit` among them) and server notification."""
    openrpc = json.loads((ROOT / "schemas" / "openrpc.json").read_text(encoding="utf-8"))
    return [m["name"] for m in openrpc["methods"]] + [n["name"] for n in openrpc["x-notifications"]]


def section(path: Path, title: str) -> list[str]:
    """The lines under a `## title` heading, up to the next heading of the same or a higher level."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if re.match(r"^#{1,2}\s", lines[i])), len(lines))
    return lines[start:end]


def test_the_readme_is_at_most_250_lines() -> None:
    # The front door: what it is, how to start, how to use it, and links. Reference text goes in docs/.
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= 250, f"README.md has {count} lines; move reference text into docs/"


def test_the_quick_start_is_make_demo_and_make_test() -> None:
    lines = section(README, "Quick start")
    fences = [i for i, line in enumerate(lines) if FENCE.match(line)]
    assert len(fences) >= 2, "the quick start has no code block"
    block = lines[fences[0] + 1 : fences[1]]
    commands = [line.split("#", 1)[0].strip() for line in block]
    assert [c for c in commands if c] == ["make demo", "make test"]


@pytest.mark.parametrize("name", protocol_names())
def test_every_method_and_notification_is_documented(name: str) -> None:
    # Named in a heading (as a word: "shutdown, exit" names both) or in backticks somewhere.
    for path in MARKDOWN:
        words = {word for heading in headings(path) for word in re.split(r"[\s,]+", plain(heading))}
        if name in words or name in code_spans(path):
            return
    pytest.fail(f"{name!r} (schemas/openrpc.json) is named in no heading or code span of README.md or docs/")


@pytest.mark.parametrize("name", protocol_names())
def test_the_protocol_reference_has_a_section_per_method_and_notification(name: str) -> None:
    titles = {plain(heading).strip() for heading in headings(ROOT / "docs" / "protocol.md")}
    assert name in titles, f"docs/protocol.md has no section `### {name}`"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(path: Path) -> None:
    broken = []
    for target in links(path):
        if SCHEME.match(target):
            continue  # https:, mailto: and the like are not checked offline
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked}")
        elif anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked):
            broken.append(f"{target}: no heading in {linked.relative_to(ROOT)} makes #{anchor}")
    assert not broken, "\n".join(broken)


def test_the_readme_links_to_every_docs_file() -> None:
    linked = {(ROOT / unquote(t.partition("#")[0])).resolve() for t in links(README) if not SCHEME.match(t)}
    missing = [p.relative_to(ROOT).as_posix() for p in DOCS if p.resolve() not in linked]
    assert DOCS and not missing, f"README.md does not link to {missing}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_docs_file_says_what_it_covers_and_links_back(path: Path) -> None:
    # A reader who lands on a docs page from a search knows where they are and how to get home.
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), "the first line is the page's title"
    paragraph = [line for line in lines[2:] if line][:1]
    assert paragraph and lines[3] == "", "one line under the title says what the page covers"
    assert "](../README.md)" in paragraph[0], "that line links back to the README"
