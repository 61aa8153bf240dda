"""Griffe extension for the docs build: render the reST idioms of bayesvc's numpy-style docstrings
as Markdown, so mkdocstrings shows them cleanly under ``mkdocs build --strict``.

* Sphinx roles (``:func:`x```, ``:class:`~a.b.C```, ``:meth:`text <target>```) become inline code
  (plain code, not links: targets may be private or on pages not listed).
* Doctest blocks outside an ``Examples`` section (griffe formats only those) become fenced
  ``pycon`` blocks, so that ``>>>`` is not read as a block quote and doctest output such as
  ``=====`` is not read as a heading underline.
* A reST literal-block marker ``::`` is dropped (the indented block that follows is already a
  Markdown code block), and ``text::`` becomes ``text:``.

The docstrings themselves are not changed; this only affects the rendered site.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|obj|exc|const):`([^`]+)`")
_SECTION_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def _role(match: re.Match) -> str:
    text = match.group(1).strip()
    titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", text)
    if titled:
        return f"`{titled.group(1)}`"
    if text.startswith("~"):
        text = text[1:].split(".")[-1]
    return f"`{text}`"


def _fence_doctests(lines: list[str]) -> list[str]:
    out: list[str] = []
    in_examples = False
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if i + 1 < n and _SECTION_UNDERLINE.match(lines[i + 1]) and line.strip():
            in_examples = line.strip() == "Examples"
        stripped = line.lstrip()
        if stripped.startswith(">>>") and not in_examples:
            indent = line[: len(line) - len(stripped)]
            block = []
            while i < n and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [indent + "```pycon", *(indent + b for b in block), indent + "```", ""]
            continue
        out.append(line)
        i += 1
    return out


def _literal_markers(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if line.strip() == "::":
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith((">>>", "...")):
            line = line.rstrip()[:-1]
        out.append(line)
    return out


def convert(text: str) -> str:
    """reST idioms -> Markdown (see the module docstring)."""
    text = _ROLE.sub(_role, text)
    return "\n".join(_literal_markers(_fence_doctests(text.split("\n"))))


class RstDocstrings(griffe.Extension):
    """Rewrite every docstring with :func:`convert` when griffe loads an object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
