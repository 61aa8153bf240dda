"""Summary tables in statsmodels' ``summary2`` layout (the one ``MixedLM.summary()`` prints).

Computing and rendering are kept apart:

* builders such as :func:`bayesvc.results.summaries.reml_summary` compute a :class:`Summary`:
  header ``(label, value)``
  pairs and numeric DataFrames (NaN where a cell is blank), plus a float format per table;
* :class:`Summary` only formats: plain text (``str``, exactly statsmodels' layout), HTML
  (``_repr_html_``), Markdown (:meth:`Summary.to_markdown`) and LaTeX (:meth:`Summary.to_latex`).

Extension point
---------------
Another estimator's summary (e.g. NUTS: columns Mean, SD, interval bounds, R-hat, ESS bulk/tail,
MCSE; header lines for chains x draws, divergences, max R-hat, min ESS, sampler) only has to build
the header pairs and a DataFrame and hand them to :class:`Summary`; a per-column float format
(a mapping) covers columns such as ESS that want no decimals. :func:`format_header` and
:func:`format_table` are the cell formatters :class:`Summary` uses, public for reuse.

>>> import pandas as pd
>>> df = pd.DataFrame({"Mean": [1.23456, -0.5], "SD": [0.1, 0.2], "R-hat": [1.0012, 1.01],
...                    "ESS bulk": [812.0, 1500.0]}, index=["Intercept", "group1 Var"])
>>> fmts = {"Mean": "%.3f", "SD": "%.3f", "R-hat": "%.2f", "ESS bulk": "%.0f"}
>>> s = Summary("Posterior summary",
...             [("Chains x draws:", "4 x 1000"), ("Divergences:", 0), ("Sampler:", "nutpie")],
...             {"params": df}, float_formats={"params": fmts})
>>> print(s)  # doctest: +NORMALIZE_WHITESPACE
           Posterior summary
========================================
Chains x draws: 4 x 1000 Sampler: nutpie
Divergences:    0
----------------------------------------
              Mean    SD  R-hat ESS bulk
----------------------------------------
Intercept     1.235 0.100  1.00      812
group1 Var   -0.500 0.200  1.01     1500
========================================
<BLANKLINE>
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: statsmodels' default float format (``summary2``), used for header values and unlisted columns.
DEFAULT_FLOAT_FORMAT = "%.4f"

FloatFormat = str | Callable[[float], str] | Mapping[str, "str | Callable[[float], str]"]

__all__ = ["Summary", "format_table", "format_header", "format_value"]


# ----------------------------------------------------------------------------- cell formatting

def format_value(value, float_format: str | Callable[[float], str] = DEFAULT_FLOAT_FORMAT) -> str:
    """Format one cell.

    Parameters
    ----------
    value : object
        ``None`` and non-finite floats give ``""`` (statsmodels leaves them blank); strings pass
        through; booleans give ``"Yes"``/``"No"``; integers are printed as integers; other reals
        use ``float_format``.
    float_format : str or callable
        A ``%``-style (``"%.3f"``) or ``{}``-style (``"{:.3f}"``) format, or a callable.

    Returns
    -------
    str
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "Yes" if value else "No"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return ""
        if callable(float_format):
            return float_format(float(value))
        if "{" in float_format:
            return float_format.format(float(value))
        return float_format % float(value)
    return str(value)


def format_table(df: pd.DataFrame, float_format: FloatFormat = DEFAULT_FLOAT_FORMAT) -> pd.DataFrame:
    """Format every cell of a numeric table as text.

    Parameters
    ----------
    df : DataFrame
        Values to show; NaN cells become blank.
    float_format : str, callable or mapping
        One format for all columns, or a mapping ``column -> format`` (columns it does not name
        use :data:`DEFAULT_FLOAT_FORMAT`). See :func:`format_value`.

    Returns
    -------
    DataFrame
        Same index and columns (as strings), every cell a string.
    """
    out = {}
    for col in df.columns:
        if isinstance(float_format, Mapping):
            fmt = float_format.get(col, DEFAULT_FLOAT_FORMAT)
        else:
            fmt = float_format
        out[str(col)] = [format_value(v, fmt) for v in df[col].tolist()]
    return pd.DataFrame(out, index=[str(i) for i in df.index], columns=[str(c) for c in df.columns])


def format_header(pairs: Sequence[tuple[str, object]],
                  float_format: str | Callable[[float], str] = DEFAULT_FLOAT_FORMAT) -> list[tuple[str, str]]:
    """Format ``(label, value)`` header pairs (values as in :func:`format_value`).

    Returns
    -------
    list of (str, str)
    """
    return [(str(label), format_value(value, float_format)) for label, value in pairs]


def _header_grid(pairs: list[tuple[str, str]], ncols: int = 2) -> list[list[str]]:
    """statsmodels' ``add_dict``: pad to a multiple of ``ncols``, fill column-major."""
    pairs = list(pairs) + [("", "")] * (-len(pairs) % ncols)
    nrows = len(pairs) // ncols
    return [[s for k in range(ncols) for s in pairs[k * nrows + i]] for i in range(nrows)]


# ----------------------------------------------------------------------------- text layout

@dataclass
class _Block:
    """One table as strings: rows of data cells, optional column headers and row stubs."""

    rows: list[list[str]]
    headers: list[str] | None
    stubs: list[str] | None
    align: str  # 'l' or 'r' for data cells

    @property
    def ncols(self) -> int:
        return len(self.headers) if self.headers is not None else len(self.rows[0])

    @property
    def nsep(self) -> int:
        """Column separators in a line: one fewer than its cells, the row stubs included."""
        return max(self.ncols - 1 + (self.stubs is not None), 1)

    def lines(self, pad_col: int = 0, pad_index: int = 0) -> list[str]:
        """statsmodels' ``SimpleTable.as_text`` for ``summary2``: rule, header, rule, rows."""
        data = [[c.strip() for c in r] for r in self.rows]
        if self.stubs is not None:
            stubs = [s + " " * pad_index for s in self.stubs]
            body = [[(s, "l")] + [(c, self.align) for c in r] for s, r in zip(stubs, data)]
        else:
            body = [[(r[0] + " " * pad_index, self.align)] + [(c, self.align) for c in r[1:]]
                    for r in data]
        rows = list(body)
        if self.headers is not None:
            head = [(h, "c") for h in self.headers]
            rows.insert(0, ([("", "c")] if self.stubs is not None else []) + head)
        widths = [max(len(r[j][0]) for r in rows) for j in range(len(rows[0]))]
        sep = " " * (pad_col + 1)
        text = [sep.join(_pad(s, w, a) for (s, a), w in zip(r, widths)) for r in rows]
        out = ["-" * len(text[-1])]
        if self.headers is not None:
            out += [text[0], "-" * len(text[0])]
            text = text[1:]
        return out + text


def _pad(s: str, width: int, align: str) -> str:
    if align == "l":
        return s.ljust(width)
    if align == "r":
        return s.rjust(width)
    return s.center(width)


def _layout_text(blocks: list[_Block], title: str | None, notes: Sequence[str]) -> str:
    """statsmodels' ``summary2.Summary.as_text``: a narrower block is widened to the widest by
    spaces added to each column separator, the rest to its first column.

    One difference, on purpose: statsmodels counts a table's separators without the one after its
    row labels (``DataFrame.shape[1] - 1``), so a table narrower than the header comes out wider
    than the rules by the per-separator padding (its MixedLM summaries show it). Counting every
    separator (:attr:`_Block.nsep`) makes every line exactly as wide as the rules."""
    lengths = [len(b.lines()[0]) for b in blocks]
    widest = max(lengths)
    lines: list[str] = []
    for b, length in zip(blocks, lengths):
        pad = int((widest - length) / b.nsep)
        lines += b.lines(pad, widest - (length + b.nsep * pad))
    lines[0] = "=" * widest
    lines.append("=" * widest)
    if title is None:
        title = ""
    elif len(title) < widest:
        title = " " * int(widest / 2 - len(title) / 2) + title
    txt = "\n".join("\n".join(textwrap.wrap(x, widest)) for x in notes)
    return f"{title}\n" + "\n".join(lines) + f"\n{txt}"


# ----------------------------------------------------------------------------- Summary

@dataclass
class Summary:
    """A results summary: title, two-column header and named tables.

    Holds values, not text; every rendering formats them on the fly.

    Parameters
    ----------
    title : str
        Centered above the text table; the caption in HTML and LaTeX.
    header : list of (str, object)
        ``(label, value)`` pairs, laid out in two columns (first half left, as statsmodels).
        Values are formatted by :func:`format_value` with ``header_float_format``.
    tables : dict of str to DataFrame
        Numeric tables, rendered in order (the index gives the row labels); NaN shows blank.
        Builders put their main table under ``"params"``.
    float_formats : dict of str to format, optional
        Per-table format, as :func:`format_table` takes it; unlisted tables use
        :data:`DEFAULT_FLOAT_FORMAT`.
    header_float_format : str, default ``"%.4f"``
    notes : list of str, optional
        Lines below the table, wrapped to its width.
    """

    title: str
    header: list[tuple[str, object]]
    tables: dict[str, pd.DataFrame]
    float_formats: dict[str, FloatFormat] = field(default_factory=dict)
    header_float_format: str = DEFAULT_FLOAT_FORMAT
    notes: list[str] = field(default_factory=list)

    # -------------------------------------------------------------- formatted pieces
    def formatted_header(self) -> list[tuple[str, str]]:
        """Header pairs as strings."""
        return format_header(self.header, self.header_float_format)

    def formatted_tables(self) -> dict[str, pd.DataFrame]:
        """Every table with its cells as strings."""
        return {name: format_table(df, self.float_formats.get(name, DEFAULT_FLOAT_FORMAT))
                for name, df in self.tables.items()}

    def _blocks(self) -> list[_Block]:
        blocks = []
        if self.header:
            blocks.append(_Block(_header_grid(self.formatted_header()), None, None, "l"))
        for df in self.formatted_tables().values():
            if len(df):
                blocks.append(_Block(df.values.tolist(), list(df.columns), list(df.index), "r"))
        return blocks

    # -------------------------------------------------------------- renderings
    def as_text(self) -> str:
        """The plain-text table, character for character statsmodels' ``summary2`` layout."""
        blocks = self._blocks()
        if not blocks:
            return f"{self.title}\n"
        return _layout_text(blocks, self.title, self.notes)

    def __str__(self) -> str:
        return self.as_text()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """HTML: the header table (with the title as caption), then each table."""
        e = html.escape
        parts = []
        if self.header:
            rows = "\n".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                             for r in _header_grid(self.formatted_header()))
            parts.append(f'<table class="simpletable">\n<caption>{e(self.title)}</caption>\n'
                         f"{rows}\n</table>")
        for df in self.formatted_tables().values():
            head = "<tr><th></th>" + "".join(f"<th>{e(c)}</th>" for c in df.columns) + "</tr>"
            body = "\n".join(f"<tr><th>{e(i)}</th>" + "".join(f"<td>{e(c)}</td>" for c in r)
                             + "</tr>" for i, r in zip(df.index, df.values.tolist()))
            cap = "" if self.header else f"\n<caption>{e(self.title)}</caption>"
            parts.append(f'<table class="simpletable">{cap}\n{head}\n{body}\n</table>')
        notes = "".join(f"<br/>\n{e(n)}" for n in self.notes)
        return "\n".join(parts) + notes

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown: bold title, the header grid, then each table."""
        def row(cells):
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out = [f"**{self.title}**", ""]
        if self.header:
            out += [row([""] * 4), "|:--|:--|:--|:--|"]
            out += [row(r) for r in _header_grid(self.formatted_header())]
            out.append("")
        for df in self.formatted_tables().values():
            out += [row([""] + list(df.columns)), "|:--" + "|--:" * df.shape[1] + "|"]
            out += [row([i] + r) for i, r in zip(df.index, df.values.tolist())]
            out.append("")
        out += [f"*{n.strip()}*" for n in self.notes]
        return "\n".join(out).rstrip("\n") + "\n"

    def to_latex(self, label: str | None = None) -> str:
        """A LaTeX ``table`` of ``tabular`` blocks (no packages beyond LaTeX's own).

        Parameters
        ----------
        label : str, optional
            Adds ``\\label{label}``.
        """
        out = ["\\begin{table}", f"\\caption{{{_latex_escape(self.title)}}}"]
        if label:
            out.append(f"\\label{{{label}}}")
        if self.header:
            out += ["\\begin{tabular}{llll}", "\\hline"]
            out += [" & ".join(map(_latex_escape, r)) + " \\\\"
                    for r in _header_grid(self.formatted_header())]
            out += ["\\hline", "\\end{tabular}"]
        for df in self.formatted_tables().values():
            out += ["\\begin{tabular}{l" + "r" * df.shape[1] + "}", "\\hline"]
            out.append(" & ".join(map(_latex_escape, [""] + list(df.columns))) + " \\\\")
            out.append("\\hline")
            out += [" & ".join(map(_latex_escape, [i] + r)) + " \\\\"
                    for i, r in zip(df.index, df.values.tolist())]
            out += ["\\hline", "\\end{tabular}"]
        out.append("\\end{table}")
        out += [_latex_escape(n.strip()) + " \\newline" for n in self.notes]
        return "\n".join(out) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "<": r"$<$", ">": r"$>$", "|": r"$|$"}


def _latex_escape(s: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in s)
