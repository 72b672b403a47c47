"""How an indicator's counts are split into series, and which series an objective reads.

Counts are kept per (label set, threshold rule) of an indicator: a ratio measurement adds
to the series of its labels with rule key "" ; a threshold measurement adds to one series
per distinct threshold rule among the indicator's objectives. An objective sums the series
of its rule whose labels its matchers accept. The evaluator writes series under
`series_name`; the api reads them back with `series_key`. Pure functions, no I/O.
"""

from __future__ import annotations

import orjson

from shared.budget import ObjectiveTerms, matches

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[Labels, str]
"""(label set as sorted pairs, threshold rule key; "" for ratio indicators)."""

SeriesGroup = tuple[str, Labels]
"""(threshold rule key, matchers): objectives with the same group read the same series."""


def series_name(key: SeriesKey) -> str:
    """The stored name of a series: its labels as sorted JSON, `|`, its rule key."""
    labels, rule = key
    return orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS).decode() + "|" + rule


def series_key(name: str) -> SeriesKey:
    """The inverse of `series_name`; "" (written before series carried labels) is the unlabelled ratio series."""
    if not name:
        return (), ""
    labels, _, rule = name.rpartition("|")
    loaded: dict[str, str] = orjson.loads(labels)
    return tuple(sorted(loaded.items())), rule


def rule_key(terms: ObjectiveTerms) -> str:
    """The rule key of the series an objective reads: its threshold rule's key, "" for ratio objectives."""
    return terms.threshold.key if terms.threshold is not None else ""


def series_group(terms: ObjectiveTerms) -> SeriesGroup:
    """The objective's (rule key, matchers): objectives that share it sum the same series."""
    return rule_key(terms), terms.matchers


def selects(group: SeriesGroup, key: SeriesKey) -> bool:
    """Whether a series feeds the objectives of `group`: same rule, and its labels satisfy the matchers."""
    rule, matchers = group
    labels, series_rule = key
    return series_rule == rule and matches(matchers, labels)
