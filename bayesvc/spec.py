"""Data-free model descriptions: what the user asked for, before any data is seen.

Three ways to state a model compile to one :class:`ModelSpec`:

* an lme4-style formula, ``y ~ x + (1|g1/g2)`` (:func:`parse_lme4`),
* the statsmodels style, ``groups=``, ``re_formula=``, ``vc_formula=`` (:func:`from_statsmodels`),
* arrays plus a :class:`VCSpec`, exactly as statsmodels' ``MixedLM`` takes them (handled in
  :mod:`bayesvc.design`, because arrays are data).

formulae parses the fixed part and the expressions inside random-effect bars; the bars
themselves are split here because formulae splits ``(1 + x | g)`` into independent terms and
does not know ``||``, while we must keep which coefficients are correlated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import fail


@dataclass(frozen=True)
class RETerm:
    """One random-effect term ``(expr | factor)``.

    Attributes
    ----------
    expr : str
        Right-hand side of the term's model matrix, e.g. ``"1"``, ``"1 + x"``, ``"0 + x"``.
    factor : tuple of str
        Columns whose interaction defines the grouping levels (``("g1", "g2")`` for ``g1:g2``).
    correlated : bool
        Whether the coefficients of ``expr`` share one unstructured covariance matrix.
    name : str or None
        Component name override (statsmodels ``vc_formula`` keys); defaults to the factor name.
    within : str or None
        For statsmodels variance components: the ``groups`` column within which the columns of
        ``expr`` are independent random effects.

    Examples
    --------
    >>> t = RETerm("1 + x", ("g1", "g2"))              # (1 + x | g1:g2)
    >>> t.factor_name, t.correlated
    ('g1:g2', True)
    >>> parse_lme4("y ~ (1|g)").re_terms[0]
    RETerm(expr='1', factor=('g',), correlated=True, name=None, within=None)
    """

    expr: str
    factor: tuple[str, ...]
    correlated: bool = True
    name: str | None = None
    within: str | None = None

    @property
    def factor_name(self) -> str:
        """The grouping factor as written in a formula (``"g1:g2"`` for an interaction).

        Examples
        --------
        >>> RETerm("1", ("g1", "g2")).factor_name
        'g1:g2'
        """
        return ":".join(self.factor)


@dataclass(frozen=True)
class ModelSpec:
    """A data-free description of a linear mixed model.

    Built by :func:`parse_lme4` or :func:`from_statsmodels`; :func:`~bayesvc.design.build_design`
    combines it with data.

    Attributes
    ----------
    response : str
        Name of the response column.
    fixed : str
        Right-hand side of the fixed-effects formula (``"1 + x"``).
    re_terms : tuple of RETerm
        The random-effect terms.
    formula : str
        The formula as given.
    style : {'lme4', 'statsmodels'}
    groups : str or None
        The statsmodels ``groups`` column.
    cbind : tuple of str or None
        lme4's binomial response ``cbind(k, n - k)``: the successes column (also ``response``) and
        the failures expression (evaluated on the data).

    Examples
    --------
    >>> s = parse_lme4("y ~ x + (1|g1) + (1|g2)")
    >>> s.response, s.fixed, len(s.re_terms), s.style
    ('y', '1 + x', 2, 'lme4')
    >>> s.columns
    ['y', 'x', 'g1', 'g2']
    """

    response: str
    fixed: str
    re_terms: tuple[RETerm, ...]
    formula: str
    style: str = "lme4"
    groups: str | None = None
    cbind: tuple[str, str] | None = None

    @property
    def columns(self) -> list[str]:
        """Every data column the specification refers to (best effort for expressions).

        Examples
        --------
        >>> from_statsmodels("y ~ np.log(x)", "school", vc_formula={"class": "0 + C(cls)"}).columns
        ['y', 'x', 'cls', 'school']
        """
        cols = [self.response, *(_names_in(self.cbind[1]) if self.cbind else []), *_names_in(self.fixed)]
        for t in self.re_terms:
            cols += [*_names_in(t.expr), *t.factor]
            if t.within:
                cols.append(t.within)
        if self.groups:
            cols.append(self.groups)
        seen: list[str] = []
        for c in cols:
            if c not in seen:
                seen.append(c)
        return seen


@dataclass(frozen=True)
class VCSpec:
    """Variance components given as matrices, exactly as statsmodels' ``VCSpec``.

    Parameters
    ----------
    names : list of str
        One name per variance component.
    colnames : list of list of list of str
        ``colnames[k][g]`` names the columns of ``mats[k][g]``.
    mats : list of list of ndarray
        ``mats[k][g]`` is the design matrix of component ``k`` for the ``g``-th group (groups in
        sorted order, rows in data order within the group). Each column is one random effect
        with variance ``vcomp[k]``.

    Examples
    --------
    >>> import numpy as np
    >>> vc = VCSpec(["g2"], [[["a", "b"]]], [[np.eye(2)]])
    >>> vc.names
    ['g2']
    """

    names: list[str]
    colnames: list = field(repr=False)
    mats: list = field(repr=False)

    @classmethod
    def coerce(cls, obj) -> "VCSpec":
        """Accept our VCSpec or a statsmodels ``VCSpec`` (duck-typed: names, colnames, mats).

        Examples
        --------
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> other = SimpleNamespace(names=["g2"], colnames=[[["a", "b"]]], mats=[[np.eye(2)]])
        >>> VCSpec.coerce(other)
        VCSpec(names=['g2'])
        """
        if isinstance(obj, cls):
            return obj
        if all(hasattr(obj, a) for a in ("names", "colnames", "mats")):
            return cls(list(obj.names), list(obj.colnames), list(obj.mats))
        fail(f"exog_vc must be a VCSpec (names, colnames, mats), got {type(obj).__name__}")


#: a column name as formulae reads one: any Python identifier (unicode letters included), dots
#: allowed after the first character, or any text in backquotes
_NAME = re.compile(r"[^\W\d][\w.]*")
_QUOTED = re.compile(r"`([^`]+)`")
_FUNCS = {"C", "I", "np", "log", "exp", "scale", "center", "Q", "T", "S", "sqrt", "poly"}


def _names_in(expr: str) -> list[str]:
    """Bare variable names in an expression (function names and quoted strings excluded)."""
    expr = re.sub(r"'[^']*'|\"[^\"]*\"", "", expr)
    out = _QUOTED.findall(expr)
    expr = _QUOTED.sub(" ", expr)
    for m in _NAME.finditer(expr):
        tok = m.group(0)
        after = expr[m.end():].lstrip()
        if after.startswith("(") or tok in _FUNCS or tok.split(".")[0] in _FUNCS:
            continue
        if re.fullmatch(r"\d.*", tok):
            continue
        out.append(tok)
    return out


def _split_top(s: str, sep: str = "+") -> list[str]:
    """Split on ``sep`` at parenthesis depth 0."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                fail(f"malformed formula: unbalanced ')' in {s!r}")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        fail(f"malformed formula: unbalanced '(' in {s!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def column_name(token: str) -> str | None:
    """The column a formula token names (backquotes removed), ``None`` when it names none.

    >>> column_name("rendement_é"), column_name("`my x`"), column_name("1x")
    ('rendement_é', 'my x', None)
    """
    token = token.strip()
    m = _QUOTED.fullmatch(token)
    if m:
        return m.group(1)
    return token if _NAME.fullmatch(token) else None


def _factor_terms(factor: str, formula: str) -> list[tuple[str, ...]]:
    """``a/b`` -> [(a,), (a, b)]; ``a:b`` -> [(a, b)]; ``a`` -> [(a,)]."""
    factor = factor.strip()
    if not factor:
        fail(f"malformed formula: empty grouping factor in {formula!r}")
    levels = [p.strip() for p in factor.split("/")]
    cols = []
    for k, lv in enumerate(levels):
        for p in lv.split(":"):
            name = column_name(p)
            if name is None:
                fail(f"malformed formula: grouping factor {p.strip()!r} in {formula!r} is not a column name")
            cols.append((k, name))
    names = [c for _, c in cols]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        fail(f"malformed formula: grouping factor {factor!r} in {formula!r} names column {twice[0]!r} "
             "more than once")
    out, acc = [], []
    for k in range(len(levels)):
        acc += [c for owner, c in cols if owner == k]
        out.append(tuple(acc))
    return out if "/" in factor else [tuple(names)]


def _expr_has_intercept(expr: str) -> bool:
    terms = [t.replace(" ", "") for t in _split_top(expr)]
    return not any(t in ("0", "-1") for t in terms)


def _expr_columns_uncorrelated(expr: str) -> list[str]:
    """Split ``1 + x + z`` into ``['1', '0 + x', '0 + z']`` for ``||`` terms."""
    terms = [t for t in _split_top(expr) if t.replace(" ", "") not in ("0", "1", "-1", "")]
    out = ["1"] if _expr_has_intercept(expr) else []
    out += [f"0 + {t}" for t in terms]
    return out


def parse_lme4(formula: str) -> ModelSpec:
    """Parse an lme4-style formula into a :class:`ModelSpec`.

    Supports ``(1|g)``, nested ``(1|a/b)`` and ``(1|a:b)``, crossed ``(1|a) + (1|b)``,
    correlated ``(1 + x|g)``, uncorrelated ``(x||g)`` and ``(0 + x|g)``.

    Examples
    --------
    >>> s = parse_lme4("y ~ x + (1|g1/g2)")
    >>> [t.factor_name for t in s.re_terms], s.fixed
    (['g1', 'g1:g2'], '1 + x')
    """
    if not isinstance(formula, str) or "~" not in formula:
        fail(f"malformed formula {formula!r}: expected 'response ~ terms'")
    lhs, rhs = formula.split("~", 1)
    response = lhs.strip()
    cbind = _cbind(response, formula)
    response = cbind[0] if cbind else column_name(response)
    if not response:
        fail(f"malformed formula {formula!r}: the response must be a column name, got {lhs.strip()!r}")
    if not rhs.strip():
        fail(f"malformed formula {formula!r}: nothing to the right of '~'")
    fixed_parts, re_terms = [], []
    for part in _split_top(rhs):
        if not part:
            fail(f"malformed formula {formula!r}: empty term (a dangling '+'?)")
        inner = part[1:-1] if part.startswith("(") and part.endswith(")") else None
        if inner is not None and "|" in inner:
            double = "||" in inner
            expr, factor = inner.split("||" if double else "|", 1)
            if not expr.strip():
                fail(f"malformed formula {formula!r}: nothing before the bar in {part!r} "
                     "(write (1|g) for a random intercept)")
            expr = expr.strip()
            if "|" in factor:
                fail(f"malformed formula {formula!r}: more than one bar in {part!r}")
            factors = _factor_terms(factor, formula)
            if not _expr_has_intercept(expr) or "1" in [t.strip() for t in _split_top(expr)]:
                pass
            elif expr.strip() != "1":
                expr = "1 + " + expr
            for fac in factors:
                if double:
                    for e in _expr_columns_uncorrelated(expr):
                        re_terms.append(RETerm(e, fac, correlated=False))
                else:
                    re_terms.append(RETerm(expr, fac, correlated=True))
        else:
            fixed_parts.append(part)
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    if not any(p.replace(" ", "") in ("0", "-1", "1") for p in _split_top(fixed)):
        fixed = "1 + " + fixed
    if not re_terms:
        fail(f"formula {formula!r} has no random-effect term such as (1|group)")
    return ModelSpec(response, fixed, tuple(re_terms), formula, style="lme4", cbind=cbind)


def _cbind(lhs: str, formula: str) -> tuple[str, str] | None:
    """``cbind(k, n - k)`` -> ``("k", "n - k")`` (lme4's binomial response), else None.

    >>> _cbind("cbind(incidence, size - incidence)", "")
    ('incidence', 'size - incidence')
    """
    m = re.fullmatch(r"cbind\((.*)\)", lhs.replace(" ", "") and lhs.strip())
    if not m:
        return None
    parts = _split_top(m.group(1), ",")
    if len(parts) != 2 or not _NAME.fullmatch(parts[0]) or not parts[1]:
        fail(f"malformed formula {formula!r}: cbind() takes a successes column and a failures "
             "expression, e.g. cbind(k, n - k)")
    return parts[0], parts[1]


def _one_sided(f, what: str) -> str:
    """A one-sided formula as statsmodels takes it, with or without its ``~`` (``"~ 0 + x"`` and
    ``"0 + x"`` are the same formula)."""
    if not isinstance(f, str):
        fail(f"{what} must be a formula string, got {type(f).__name__}")
    f = f.strip()
    if f.startswith("~"):
        f = f[1:].strip()
    if not f or "~" in f:
        fail(f"{what} must be a one-sided formula such as '1 + x' or '~ 1 + x', got {f!r}")
    return f


def from_statsmodels(
    formula: str,
    groups: str | None,
    re_formula: str | None = None,
    vc_formula: dict[str, str] | None = None,
) -> ModelSpec:
    """Describe a model as statsmodels' ``MixedLM.from_formula`` would.

    ``groups`` names the grouping column; ``re_formula`` (default ``"1"``) gives correlated
    random coefficients per group; each ``vc_formula`` entry is a variance component whose
    columns, within each group, are independent random effects with a common variance. Both
    formulas may be written with statsmodels' leading ``~`` or without it.

    Examples
    --------
    >>> s = from_statsmodels("y ~ 1", "group1", "1", {"group2": "0 + C(group2)"})
    >>> [(t.name, t.expr) for t in s.re_terms]
    [('group1', '1'), ('group2', '0 + C(group2)')]
    >>> [t.expr for t in from_statsmodels("y ~ x", "g", "~ x", {"v": "~0 + C(v0)"}).re_terms]
    ['x', '0 + C(v0)']
    """
    if not isinstance(groups, str):
        fail("groups must name a column of data in the formula interface")
    if "|" in formula:
        fail(f"formula {formula!r} mixes lme4 bars with statsmodels' groups=; use one style")
    if "~" not in formula:
        fail(f"malformed formula {formula!r}: expected 'response ~ terms'")
    lhs, rhs = formula.split("~", 1)
    response = column_name(lhs) or lhs.strip()
    terms: list[RETerm] = []
    vc_formula = dict(vc_formula or {})
    if re_formula is None:
        re_formula = "1" if not vc_formula else None
    if re_formula is not None:
        re_formula = _one_sided(re_formula, "re_formula")
    if re_formula is not None and re_formula.replace(" ", "") not in ("0", "-1", "0+1"):
        terms.append(RETerm(re_formula, (groups,), correlated=True, name=groups))
    for name, f in vc_formula.items():
        f = _one_sided(f, f"vc_formula[{name!r}]")
        terms.append(RETerm(f, (groups,), correlated=False, name=name, within=groups))
    if not terms:
        fail("no random effects: give re_formula or vc_formula")
    fixed = rhs.strip() or "1"
    return ModelSpec(response, fixed, tuple(terms), formula, style="statsmodels", groups=groups)
