"""The metric names a PromQL expression (a Grafana panel's, with Grafana's variables) reads.

A small lexer, not a full parser: it removes what cannot hold a metric name (string literals,
label matchers ``{…}``, range and subquery brackets ``[…]``, the label lists of ``by``,
``without``, ``on``, ``ignoring``, ``group_left`` and ``group_right``, ``offset`` durations,
Grafana's ``$variables``), then reads the identifiers left, keeping those that are not a function
or aggregation call (a name followed by ``(``), a keyword, or part of a number. Grafana's
``label_values(metric, label)`` variable queries name their metric as the first argument.
"""

from __future__ import annotations

import re

_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([A-Za-z_:][A-Za-z0-9_:]*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$__\w+|\$\w+|\[\[\w+\]\]")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+", re.IGNORECASE)
_AT = re.compile(r"@\s*(?:[0-9.]+|start\(\)|end\(\))")
# A number first (so "1e3" or "0x1f" is not read as a name "e3"), then a name, then anything else.
_TOKEN = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?"
    r"|(?P<other>.)",
    re.DOTALL,
)
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right",
     "offset", "inf", "nan"}
)  # fmt: skip
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<argument>.*?)\s*,\s*\w+\s*\)\s*$", re.DOTALL)


def metric_names(expr: str) -> set[str]:
    """Every metric name ``expr`` selects (``foo_bucket`` stays ``foo_bucket``: see
    ``base_names`` for the family)."""
    names = set(_NAME_MATCHER.findall(expr))  # {__name__="foo"}: a name inside the braces
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _BRACES.sub(" ", text)
    # Subqueries nest no brackets in practice; strip repeatedly in case one does.
    while _BRACKETS.search(text):
        text = _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _AT.sub(" ", text)
    for token in _TOKEN.finditer(text):
        name = token.group("name")
        if name is None or token.group("call") or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def variable_query_names(query: str) -> set[str]:
    """The metric a Grafana Prometheus variable query reads: ``label_values(metric, label)`` (or
    a selector inside it), ``metrics(regex)`` names none, anything else is an expression."""
    if query.strip().startswith(("metrics(", "label_names(")):
        return set()
    match = _LABEL_VALUES.match(query)
    if match:
        return metric_names(match.group("argument"))
    return metric_names(re.sub(r"^\s*query_result\((.*)\)\s*$", r"\1", query, flags=re.DOTALL))


HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def base_names(name: str, histograms: set[str]) -> set[str]:
    """The names under which ``name`` may be exported: itself, and the histogram family it is a
    series of (``foo_bucket`` → ``foo`` when ``foo`` is a histogram)."""
    candidates = {name}
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            candidates.add(name[: -len(suffix)])
    return candidates
