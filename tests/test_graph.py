"""The step graph: loops of needs, run order, and what lies upstream and downstream of a step."""

from __future__ import annotations

import pytest

from engine.graph import downstream, find_cycle, topological_order, upstream
from engine.spec import Step


def steps(**needs: list[str]) -> dict[str, Step]:
    return {step_id: Step(run=["true"], needs=deps) for step_id, deps in needs.items()}


DIAMOND = steps(build=[], test=["build"], lint=["build"], deploy=["test", "lint"], notify=["deploy"])


def test_no_cycle_in_a_diamond() -> None:
    assert find_cycle(DIAMOND) is None


def test_cycle_path_follows_needs_from_the_first_declared_step() -> None:
    graph = steps(a=["c"], b=["a"], c=["b"])
    assert find_cycle(graph) == ["a", "c", "b", "a"]


def test_cycle_found_behind_a_clean_prefix() -> None:
    graph = steps(start=[], x=["start", "z"], y=["x"], z=["y"])
    assert find_cycle(graph) == ["x", "z", "y", "x"]


def test_first_of_two_cycles_in_declaration_order() -> None:
    graph = steps(p=["q"], q=["p"], a=["b"], b=["a"])
    assert find_cycle(graph) == ["p", "q", "p"]


def test_self_need_is_a_cycle_and_unknown_needs_are_ignored() -> None:
    assert find_cycle(steps(a=["a"])) == ["a", "a"]
    assert find_cycle(steps(a=["ghost"], b=["a"])) is None


def test_topological_order_keeps_declaration_order_among_ready_steps() -> None:
    assert topological_order(DIAMOND) == ["build", "test", "lint", "deploy", "notify"]
    graph = steps(late=["early"], other=[], early=[])
    assert topological_order(graph) == ["other", "early", "late"]


def test_topological_order_counts_a_repeated_need_once() -> None:
    assert topological_order(steps(a=[], b=["a", "a"])) == ["a", "b"]


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match=r"a -> b -> a"):
        topological_order(steps(a=["b"], b=["a"], c=[]))


def test_downstream_and_upstream_are_transitive() -> None:
    assert downstream(DIAMOND, "build") == {"test", "lint", "deploy", "notify"}
    assert downstream(DIAMOND, "lint") == {"deploy", "notify"}
    assert downstream(DIAMOND, "notify") == set()
    assert upstream(DIAMOND, "notify") == {"build", "test", "lint", "deploy"}
    assert upstream(DIAMOND, "build") == set()


def test_reach_of_an_unknown_step_is_an_error() -> None:
    with pytest.raises(KeyError):
        downstream(DIAMOND, "ghost")


def test_large_graphs_do_not_recurse() -> None:
    chain = steps(s0=[], **{f"s{i}": [f"s{i - 1}"] for i in range(1, 500)})
    wide = steps(root=[], **{f"w{i}": ["root"] for i in range(499)})
    assert find_cycle(chain) is None
    assert topological_order(chain)[-1] == "s499"
    assert len(upstream(chain, "s499")) == 499
    assert len(downstream(wide, "root")) == 499
