"""Property tests of CI triggers: parsing raises only TriggerSyntaxError, decisions never raise."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlyard.pipelines.triggers import (
    SKIP_MARKERS,
    Decision,
    Filter,
    Trigger,
    TriggerSyntaxError,
    parse_trigger,
    trigger_decision,
)

KEYS = ["batch", "branches", "paths", "tags", "include", "exclude", "branchs", "none"]
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars | st.sampled_from(["none", "NONE", "*", "main", "refs/tags/*"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6) | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)
# Patterns and names from a small alphabet, so that wildcards often meet matching refs and paths.
pattern = st.text(alphabet="ab/*?.-[]", min_size=1, max_size=10)
name = st.text(alphabet="ab/.-[]", max_size=12)
refs = name | name.map(lambda n: f"refs/heads/{n}") | name.map(lambda n: f"refs/tags/{n}") | st.text(max_size=20)
paths = st.none() | st.lists(name | st.text(max_size=15), max_size=6)
messages = st.text(max_size=40) | st.sampled_from(SKIP_MARKERS)
filters = st.builds(
    Filter,
    include=st.lists(pattern, max_size=3).map(tuple),
    exclude=st.lists(pattern, max_size=3).map(tuple),
)
triggers = st.builds(Trigger, st.booleans(), filters, filters, filters, st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(value=values, present=st.booleans(), ref=refs, changed=paths, message=messages)
def test_parse_raises_only_syntax_errors_and_decisions_never_raise(
    value: Any, present: bool, ref: str, changed: list[str] | None, message: str
) -> None:
    try:
        trigger = parse_trigger(value, present=present)
    except TriggerSyntaxError as error:
        assert error.problems and error.problems[0] is error
        assert all(problem.message for problem in error.problems)
        return
    decision = trigger_decision(trigger, ref, changed, message)
    assert isinstance(decision, Decision) and decision.reason


@settings(max_examples=300, deadline=None)
@given(trigger=triggers, ref=refs, changed=paths, message=messages)
def test_decisions_on_any_trigger_never_raise(
    trigger: Trigger, ref: str, changed: list[str] | None, message: str
) -> None:
    decision = trigger_decision(trigger, ref, changed, message)
    assert isinstance(decision.run, bool) and decision.reason


def _reversed(f: Filter) -> Filter:
    return Filter(include=f.include[::-1], exclude=f.exclude[::-1])


@settings(max_examples=200, deadline=None)
@given(trigger=triggers, ref=refs, changed=paths)
def test_the_order_of_filters_does_not_matter(trigger: Trigger, ref: str, changed: list[str] | None) -> None:
    mirrored = Trigger(
        trigger.enabled,
        _reversed(trigger.branches),
        _reversed(trigger.paths),
        _reversed(trigger.tags),
        trigger.batch,
        trigger.explicit,
    )
    assert trigger_decision(trigger, ref, changed).run == trigger_decision(mirrored, ref, changed).run


@settings(max_examples=200, deadline=None)
@given(trigger=triggers, ref=refs, changed=st.lists(name, max_size=5), more=st.lists(name, max_size=3))
def test_one_included_path_is_enough_and_unknown_paths_never_block(
    trigger: Trigger, ref: str, changed: list[str], more: list[str]
) -> None:
    if trigger_decision(trigger, ref, changed).run:
        assert trigger_decision(trigger, ref, [*more, *changed]).run
        assert trigger_decision(trigger, ref, None).run


@settings(max_examples=200, deadline=None)
@given(trigger=triggers, ref=refs, changed=paths, marker=st.sampled_from(SKIP_MARKERS), text=st.text(max_size=10))
def test_a_skip_marker_or_trigger_none_never_runs(
    trigger: Trigger, ref: str, changed: list[str] | None, marker: str, text: str
) -> None:
    assert not trigger_decision(trigger, ref, changed, f"{text}{marker.upper()}{text}").run
    disabled = parse_trigger("none", present=True)
    assert trigger_decision(disabled, ref, changed, text) == Decision(False, "trigger: none")
