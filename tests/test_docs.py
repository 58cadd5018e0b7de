"""Every citation in the code resolves in ``docs/`` (design 9), read as plain files.

The code cites the numbered sections of ``docs/maths.md``, ``docs/configs.md`` and
``docs/design.md`` as ``maths 3.4``, ``configs 3`` and ``design 6`` (with lists and ranges such as
``maths 1.2, 3.8`` or ``maths 2.1-2.3, 2.6 and 10 item 2``), and the rows of
``docs/departures.md`` as ``departures A25`` or a bare ``A25``. These tests collect every such
citation in ``src/``, ``tests/`` and ``benchmarks/`` and check that each section is a numbered
heading of its page and each A-number an anchor of the departures table; and that nothing cites
the documents the code once pointed to outside the repository. No mkdocs needed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCANNED = ("src", "tests", "benchmarks")
SUFFIXES = (".py", ".toml", ".cpp", ".md", ".sh")
#: This file holds made-up citations on purpose (the collector's own checks).
SELF = Path(__file__).resolve()
#: Page name in a citation -> the page whose numbered headings it cites.
PAGES = {"maths": "maths.md", "configs": "configs.md", "design": "design.md"}

#: Runtime text (a note written into metrics.json, lines a benchmark prints, and the copies of
#: those lines in RESULTS.md) that still names the outside spec: rewording it would change what
#: the program outputs, so it is left for a change that may do so. Each entry must still occur.
ALLOWED = {
    "src/tkam/metrics/likelihood.py": ("likelihood of spec 1.4",),
    "benchmarks/latent_dim.py": ("GPU times (spec 8)",),
    "benchmarks/prior_steps.py": ("GPU times (spec 8)",),
    "benchmarks/RESULTS.md": ("GPU times (spec 8)", "GPU times (spec 8)"),
}

_NUMBER = r"\d+(?:\.\d+)?"
_SEPARATOR = r"\s*(?:,\s*and|,|and|-)\s*"
SECTION_CITATION = re.compile(
    rf"\b(?P<page>maths|configs|design)\s+(?P<numbers>{_NUMBER}(?:{_SEPARATOR}{_NUMBER})*)"
    r"(?![\w.]*\d)"
)
DEPARTURE = re.compile(r"(?<![\w-])A(\d{1,2})\b")
#: Citations of documents outside the repository (the forms the code used before docs/).
OUTSIDE = re.compile(
    r"\bspec\s+(?:sections?\s+|table\s+)?\d"
    r"|\bspec\s+(?:configs|TRAINING|A\d)"
    r"|DESIGN\.md|TKAM\.md|(?<!docs/)\bconfigs\.md|/work/shared|\bspec/"
)


class Citation(NamedTuple):
    """One cited section (``page`` in :data:`PAGES`) or departure (``page = "departures"``)."""

    page: str
    number: str
    where: str


def _expand(first: str, last: str) -> list[str]:
    """The sections a range cites: both ends, and those between them within one section."""
    a, b = first.split("."), last.split(".")
    if len(a) == len(b) == 2 and a[0] == b[0] and int(a[1]) < int(b[1]):
        return [f"{a[0]}.{k}" for k in range(int(a[1]), int(b[1]) + 1)]
    if len(a) == len(b) == 1 and int(a[0]) < int(b[0]):
        return [str(k) for k in range(int(a[0]), int(b[0]) + 1)]
    return [first, last]


def collect(text: str, where: str = "<text>") -> list[Citation]:
    """Every section and departure cited in ``text``."""
    found = []
    for match in SECTION_CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        numbers = re.findall(rf"{_NUMBER}|-", match["numbers"])
        i = 0
        while i < len(numbers):
            if i + 2 < len(numbers) and numbers[i + 1] == "-":
                cited, i = _expand(numbers[i], numbers[i + 2]), i + 3
            else:
                cited, i = [numbers[i]], i + 1
            found += [Citation(match["page"], n, f"{where}:{line}") for n in cited]
    for match in DEPARTURE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append(Citation("departures", match[1], f"{where}:{line}"))
    return found


def outside_citations(text: str, where: str = "<text>") -> list[str]:
    """``where:line: text`` of every citation of a document outside the repository."""
    return [
        f"{where}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for m in OUTSIDE.finditer(text)
    ]


def numbered_sections(page: Path) -> set[str]:
    """The numbers of a page's numbered headings (``## 3.4 Title`` -> ``3.4``)."""
    return set(re.findall(r"^#{1,6}\s+(\d+(?:\.\d+)?)\s", page.read_text(), flags=re.MULTILINE))


def departure_anchors(page: Path) -> set[str]:
    """The A-numbers with an anchor ``<a id="a25">`` in the departures page."""
    return set(re.findall(r'id="a(\d+)"', page.read_text()))


def missing(citations: list[Citation]) -> list[Citation]:
    """The citations that ``docs/`` does not resolve."""
    known = {name: numbered_sections(DOCS / page) for name, page in PAGES.items()}
    known["departures"] = departure_anchors(DOCS / "departures.md")
    return [c for c in citations if c.number not in known[c.page]]


def _files() -> list[Path]:
    return sorted(
        path
        for folder in SCANNED
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in SUFFIXES and path.resolve() != SELF
    )


def _texts() -> list[tuple[str, str]]:
    """``(relative path, text)`` of every scanned file, allowed runtime text removed."""
    texts = []
    for path in _files():
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        for allowed in ALLOWED.get(name, ()):
            assert allowed in text, f"{name} no longer holds {allowed!r}: drop it from ALLOWED"
            text = text.replace(allowed, "", 1)
        texts.append((name, text))
    return texts


# ---------------------------------------------------------------------------------------------
# The repository's citations


def test_the_code_cites_sections_and_departures() -> None:
    citations = [c for name, text in _texts() for c in collect(text, name)]
    pages = {c.page for c in citations}
    assert pages == {"maths", "configs", "design", "departures"}, pages
    assert len(citations) > 200


def test_every_cited_section_and_departure_resolves_in_docs() -> None:
    unresolved = missing([c for name, text in _texts() for c in collect(text, name)])
    listed = "\n".join(f"{c.where}: {c.page} {c.number}" for c in unresolved)
    assert not unresolved, f"citations without a section or row in docs/:\n{listed}"


def test_nothing_cites_documents_outside_the_repository() -> None:
    found = [hit for name, text in _texts() for hit in outside_citations(text, name)]
    listed = "\n".join(found)
    assert not found, f"cite docs/ instead (design 9):\n{listed}"


def test_the_departures_are_numbered_without_gaps() -> None:
    numbers = sorted(int(n) for n in departure_anchors(DOCS / "departures.md"))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 26


def test_every_numbered_heading_has_its_anchor() -> None:
    # Links such as maths.md#3.4 need the anchor; the heading is what readers see.
    for page in PAGES.values():
        text = (DOCS / page).read_text()
        for number in numbered_sections(DOCS / page):
            assert f'<a id="{number}"></a>' in text, f"{page}: section {number} has no anchor"


def test_the_tests_named_in_the_departures_exist() -> None:
    text = (DOCS / "departures.md").read_text()
    current: Path | None = None
    named = 0
    for token in re.findall(r"`(tests/[\w/.]*|::\w+)(::\w+)?`", text):
        path, function = token
        if path.startswith("::"):
            assert current is not None, f"{path} follows no test file"
            path, function = current.relative_to(ROOT).as_posix(), path
        target = ROOT / path
        assert target.exists(), f"docs/departures.md names {path}, which does not exist"
        if target.is_file():
            current = target
        if function:
            tree = ast.parse(target.read_text())
            defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert function[2:] in defined, f"{path} defines no {function[2:]}"
            named += 1
    assert named > 40


# ---------------------------------------------------------------------------------------------
# The collector itself


def test_the_collector_reads_every_citation_form() -> None:
    text = (
        "(maths 3.4) (maths 2.6 step 7) (maths 1.2, 3.8, departures A10, A24)\n"
        "(maths 2.1-2.3, 2.6 and 10 item 2) (configs 3-4) (design 6) (maths 4.1 steps 3-5)"
    )
    cited = [(c.page, c.number) for c in collect(text)]
    assert cited == [
        ("maths", "3.4"),
        ("maths", "2.6"),
        ("maths", "1.2"),
        ("maths", "3.8"),
        ("maths", "2.1"),
        ("maths", "2.2"),
        ("maths", "2.3"),
        ("maths", "2.6"),
        ("maths", "10"),
        ("configs", "3"),
        ("configs", "4"),
        ("design", "6"),
        ("maths", "4.1"),
        ("departures", "10"),
        ("departures", "24"),
    ]
    assert collect("an A100 GPU, the B-A2 tag, mathsy 3.4") == []
    assert [c.where for c in collect("\n\n(maths 1)", "f.py")] == ["f.py:3"]


@pytest.mark.parametrize(
    "text", ["(maths 9.9)", "(maths 3.9)", "(departures A99)", "(configs 7)", "(design 42)"]
)
def test_a_made_up_citation_is_reported(text: str) -> None:
    assert len(missing(collect(text))) == 1


def test_real_citations_are_not_reported() -> None:
    assert missing(collect("(maths 3.4, 4.3) (departures A1, A26) (configs 1) (design 9)")) == []


@pytest.mark.parametrize(
    "text",
    [
        "(spec 3.3)",
        "(spec section 2.6)",
        "(spec sections 1.2 and 3)",
        "(spec table 2.2)",
        "(spec configs.md)",
        "spec TRAINING.eps",
        "(spec A25)",
        "(DESIGN.md section 6)",
        "see /work/shared/spec/TKAM.md",
    ],
)
def test_citations_of_outside_documents_are_reported(text: str) -> None:
    assert outside_citations(text)


def test_words_that_merely_contain_spec_are_not_reported() -> None:
    text = 'split = "spec", the spec split, spectrum, inspect, docs/configs.md, timespec="seconds"'
    assert outside_citations(text) == []
