"""Confine a tenant's PromQL to its own namespace (prom-label-proxy semantics), with a real PromQL parser.

Runbook anomaly triggers, Runbook `verify.promql` and ServiceLevelObjective queries are written by tenants
but run with the operator's Prometheus credentials. Before any of them is sent, every vector and matrix
selector (inside functions, aggregations, subqueries, both sides of binary operators) gets the matcher
`namespace="<the object's namespace>"`:

- a selector with no namespace matcher gets it injected;
- a selector that already says `namespace="<own>"` is kept as it is;
- any other namespace matcher (another namespace, `!=`, `=~`, `!~`, even a regex that would match only the
  own namespace) refuses the whole query, with a reason naming the selector: nothing is silently rewritten;
- `or` alternatives inside braces (`{a="x" or b="y"}`) are refused: each alternative would need its own matcher.

The result is parsed again and every selector checked, so a query that could not be scoped is refused rather
than sent unscoped. Series without a `namespace` label (node or cluster metrics) therefore never match a
tenant query: ask a cluster admin for a recording rule that carries the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

import promql_parser as promql

LABEL = "namespace"
MAX_QUERY_LENGTH = 4096  # tenant PromQL longer than this is refused before parsing


@dataclass(frozen=True)
class Scoped:
    query: str | None  # the query to send; None when refused
    reason: str  # why it was refused, or what was done

    @property
    def refused(self) -> bool:
        return self.query is None


# Functions that read series no selector of the query names (Prometheus 3's info() joins target_info).
READS_UNSEEN = frozenset({"info"})


def scope(query: str, namespace: str) -> Scoped:
    """The query with every selector confined to `namespace`, or a refusal saying why."""
    try:
        return _scope(query, namespace)
    except RecursionError:  # parsing and walking recurse per level: "(" * 1000 is short but deep
        return Scoped(None, "query is nested too deeply")


def _scope(query: str, namespace: str) -> Scoped:
    if len(query) > MAX_QUERY_LENGTH:
        return Scoped(None, f"query is {len(query)} characters, over the limit of {MAX_QUERY_LENGTH}")
    try:
        expr = promql.parse(query)
    except Exception as err:  # the parser raises its own error types for bad PromQL
        return Scoped(None, f"query is not valid PromQL: {err}")
    nodes = list(_nodes(expr))
    if any(isinstance(n, promql.SubqueryExpr) and n.step is None for n in nodes):
        # the parser prints [1h:] as [1h]: with no explicit step the scoped query would not be the same query
        return Scoped(None, "a subquery needs an explicit resolution, e.g. [1h:1m] rather than [1h:]")
    hidden = sorted({n.func.name for n in nodes if isinstance(n, promql.Call) and n.func.name in READS_UNSEEN})
    if hidden:
        return Scoped(None, f"{', '.join(hidden)}() reads series the query does not name, which cannot be confined")
    selectors = [n for n in nodes if isinstance(n, promql.VectorSelector)]
    for selector in selectors:
        problem = _problem(selector, namespace)
        if problem:
            return Scoped(None, problem)
    unscoped = [s for s in selectors if not _names_own(s, namespace)]
    expected = [_shape(s) + ([(LABEL, "=", namespace)] if s in unscoped else []) for s in selectors]
    for selector in unscoped:
        selector.matchers = promql.Matchers([*selector.matchers.matchers,
                                             promql.Matcher(promql.MatchOp.Equal, LABEL, namespace)])
    scoped = str(expr)
    # What is sent must be exactly the query asked plus the matcher: parse it back and compare every selector.
    try:
        check, failure = _selectors(promql.parse(scoped)), ""
    except Exception as err:  # noqa: BLE001  the parser's own output must parse; if not, refuse
        check, failure = [], f": {err}"
    if [_shape(s) for s in check] != expected or any(s.matchers.or_matchers for s in check):
        return Scoped(None, f"query could not be confined to namespace {namespace!r}{failure} (label values "
                            "with quotes or backslashes are not supported in tenant queries)")
    return Scoped(scoped, f"confined to namespace {namespace!r}"
                          + (f" ({len(unscoped)} selector(s) given namespace=\"{namespace}\")" if unscoped else ""))


def _selectors(expr):
    """Every vector selector of the expression, as live nodes of its tree (mutating one changes the tree)."""
    return [node for node in _nodes(expr) if isinstance(node, promql.VectorSelector)]


def _nodes(expr):
    yield expr
    if isinstance(expr, promql.MatrixSelector):
        yield expr.vector_selector
    elif isinstance(expr, promql.BinaryExpr):
        yield from _nodes(expr.lhs)
        yield from _nodes(expr.rhs)
    elif isinstance(expr, promql.AggregateExpr):
        yield from _nodes(expr.expr)
        if expr.param is not None:
            yield from _nodes(expr.param)
    elif isinstance(expr, promql.Call):
        for arg in expr.args:
            yield from _nodes(arg)
    elif isinstance(expr, (promql.ParenExpr, promql.UnaryExpr, promql.SubqueryExpr)):
        yield from _nodes(expr.expr)
    elif not isinstance(expr, (promql.VectorSelector, promql.NumberLiteral, promql.StringLiteral)):
        raise ValueError(f"unknown PromQL node {type(expr).__name__}")


def _shape(selector) -> list[tuple[str, str, str]]:
    return [("__name__", "=", selector.name or "")] + [(m.name, _op(m.op), m.value)
                                                       for m in selector.matchers.matchers]


def _names_own(selector, namespace: str) -> bool:
    return any(m.name == LABEL and m.op == promql.MatchOp.Equal and m.value == namespace
               for m in selector.matchers.matchers)


def _problem(selector, namespace: str) -> str | None:
    shown = str(selector)[:200]
    if selector.matchers.or_matchers:
        return f"selector {shown} uses 'or' between matchers, which a tenant query may not"
    for m in selector.matchers.matchers:
        if m.name != LABEL:
            continue
        if m.op == promql.MatchOp.Equal and m.value == namespace:
            continue
        if m.op == promql.MatchOp.Equal:
            return (f"selector {shown} reads namespace {m.value!r}; a query of namespace {namespace!r} may read "
                    "only its own namespace's series")
        return (f"selector {shown} matches the namespace label with {_op(m.op)}; a query of namespace "
                f"{namespace!r} may only say namespace=\"{namespace}\" (or leave it out: it is added)")
    return None


def _op(op) -> str:
    for name, text in (("Equal", "="), ("NotEqual", "!="), ("Re", "=~"), ("NotRe", "!~")):
        if op == getattr(promql.MatchOp, name):
            return text
    return str(op)
