"""Expressions inside workflows: ``if:`` (bare, status functions, errors), interpolation, contexts,
and what ``validate`` reports with file:line:col and a did-you-mean."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core import Core
from engine.expressions import ExpressionError, calls_status, expressions_in, render
from engine.loader import WorkflowInvalid, load_text
from engine.signals import Start, StartStep, StepCompleted, StepFailed
from engine.spec import Workflow
from engine.state import RunState, RunStatus, StepStatus


def core(steps: dict[str, Any], inputs: dict[str, Any] | None = None, **extra: Any) -> Core:
    spec = Workflow.model_validate({"name": "t", "steps": steps, **extra})
    return Core(RunState("r1", spec, inputs or {}))


def started(decision: Any) -> list[str]:
    return [e.key for e in decision.effects if isinstance(e, StartStep)]


def params(decision: Any, key: str) -> dict[str, Any]:
    return next(e.params for e in decision.effects if isinstance(e, StartStep) and e.key == key)


# -- interpolation ------------------------------------------------------------------------------------


CTX = {"inputs": {"base": "https://x.test", "path": "v1/items", "n": 3, "list": [1, 2]}}


def test_any_number_of_expressions_in_one_string() -> None:
    assert render("${{ inputs.base }}/${{ inputs.path }}", CTX) == "https://x.test/v1/items"
    assert render("a${{ inputs.n }}b${{ inputs.n }}c${{ inputs.n }}", CTX) == "a3b3c3"
    assert render("n=${{ inputs.n }}", CTX) == "n=3"


def test_a_string_that_is_one_expression_keeps_its_type() -> None:
    assert render("${{ inputs.n }}", CTX) == 3
    assert render("  ${{ inputs.list }} ", CTX) == [1, 2]
    assert render("${{ inputs.n == 3 }}", CTX) is True
    assert render({"a": ["${{ inputs.n }}"]}, CTX) == {"a": [3]}


def test_a_closing_brace_pair_inside_a_string_literal_does_not_end_the_expression() -> None:
    assert render("${{ format('{0}}}', inputs.n) }}!", CTX) == "3}!"
    assert render("x ${{ 'a }} b' }} y", CTX) == "x a }} b y"
    assert expressions_in("${{ 'it''s }}' }} and ${{ inputs.n }}") == ["'it''s }}'", "inputs.n"]


def test_values_in_text_are_written_as_github_writes_them() -> None:
    ctx = {"inputs": {"none": None, "yes": True, "f": 2.0}}
    assert render("[${{ inputs.none }}|${{ inputs.yes }}|${{ inputs.f }}]", ctx) == "[|true|2]"


def test_an_unclosed_expression_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="never closed"):
        render("${{ inputs.n", CTX)
    with pytest.raises(ExpressionError, match="never closed"):
        render("${{ 'unterminated }}", CTX)


def test_calls_status_finds_status_functions_only() -> None:
    assert calls_status("${{ failure() }}") and calls_status("always() && inputs.x")
    assert not calls_status("inputs.x == 'failure()'") and not calls_status("${{ success }}")


# -- if: ------------------------------------------------------------------------------------------------


def test_a_bare_if_is_an_expression() -> None:
    steps = {"deploy": {"if": "inputs.env == 'prod'", "run": ["d"]}}
    assert started(core(steps, {"env": "prod"}).advance(Start(), 0)) == ["deploy"]
    c = core(steps, {"env": "staging"})
    assert started(c.advance(Start(), 0)) == []
    assert c.state.steps["deploy"].status == StepStatus.SKIPPED


@pytest.mark.parametrize(
    ("condition", "runs"),
    [
        ("${{ steps.build.outcome == 'success' }}", True),
        ("${{ steps.build.outputs.count > 0 }}", True),
        ("${{ steps.build.outputs.count == 3 }}", True),
        ("${{ steps.build.outputs.count == '3' }}", True),
        ("${{ steps.build.outputs.count > 5 }}", False),
        ("steps.build.conclusion == 'success'", True),
        ("${{ false }}", False),
        ("${{ '' }}", False),
        ("${{ 'false' }}", True),  # a non-empty string is true, as on GitHub
    ],
)
def test_if_reads_step_results(condition: str, runs: bool) -> None:
    c = core({"build": {"run": ["b"]}, "next": {"needs": ["build"], "if": condition, "run": ["n"]}})
    c.advance(Start(), 0)
    assert ("next" in started(c.advance(StepCompleted("build", 1, {"count": 3}), 1))) is runs


def test_an_if_that_cannot_be_evaluated_fails_the_step_and_the_run() -> None:
    c = core({"a": {"if": "${{ fromJSON(inputs.raw) }}", "run": ["a"]}, "b": {"needs": ["a"], "run": ["b"]}})
    c.state.inputs["raw"] = "{not json"
    c.advance(Start(), 0)
    step = c.state.steps["a"]
    assert step.status == StepStatus.FAILED and step.error_kind == "expression"
    assert "its 'if' condition could not be evaluated" in (step.error or "")
    assert "fromJSON" in (step.error or "")
    assert c.state.status == RunStatus.FAILED
    assert c.state.steps["b"].status == StepStatus.SKIPPED


def test_status_functions_decide_alone_and_agree_with_trigger() -> None:
    steps = {
        "build": {"run": ["b"]},
        "on_fail": {"needs": ["build"], "if": "${{ failure() }}", "run": ["f"]},
        "on_ok": {"needs": ["build"], "if": "success()", "run": ["o"]},
        "always": {"needs": ["build"], "if": "${{ always() }}", "run": ["a"]},
        "trigger_fail": {"needs": ["build"], "trigger": "one_failed", "run": ["t"]},
        "trigger_done": {"needs": ["build"], "trigger": "all_done", "run": ["t"]},
    }
    c = core(steps)
    c.advance(Start(), 0)
    ran = started(c.advance(StepFailed("build", 1, "command", "exit 1"), 1))
    assert sorted(ran) == ["always", "on_fail", "trigger_done", "trigger_fail"]
    c = core(steps)
    c.advance(Start(), 0)
    ran = started(c.advance(StepCompleted("build", 1, {}), 1))
    assert sorted(ran) == ["always", "on_ok", "trigger_done"]


def test_outcome_and_conclusion_follow_continue_on_error() -> None:
    c = core({"a": {"run": ["a"], "continue_on_error": True}, "b": {"needs": ["a"], "run": ["b"]}})
    c.advance(Start(), 0)
    c.advance(StepFailed("a", 1, "command", "exit 1"), 1)
    view = c.context()["steps"]["a"]
    assert view["outcome"] == "failure" and view["conclusion"] == "success"


# -- contexts ---------------------------------------------------------------------------------------------


def test_env_context_holds_the_workflow_env_and_the_step_env() -> None:
    c = core(
        {"a": {"run": ["echo", "${{ env.REGION }}-${{ env.TIER }}"], "env": {"TIER": "${{ inputs.tier }}"}}},
        {"tier": "gold"},
        env={"REGION": "eu"},
    )
    assert params(c.advance(Start(), 0), "a")["argv"] == ["echo", "eu-gold"]


def test_item_and_index_in_a_fan_out() -> None:
    c = core(
        {
            "f": {
                "for_each": '${{ fromJSON(\'["x", "y"]\') }}',
                "action": "m:f",
                "with": {"v": "${{ index }}:${{ item }}"},
            }
        }
    )
    d = c.advance(Start(), 0)
    assert [e.params["with"] for e in d.effects if isinstance(e, StartStep)] == [{"v": "0:x"}, {"v": "1:y"}]


def test_result_in_outputs() -> None:
    c = core({"a": {"run": ["a"], "outputs": {"n": "${{ fromJSON(result.stdout).n }}"}}})
    c.advance(Start(), 0)
    c.advance(StepCompleted("a", 1, {"stdout": '{"n": 4}'}), 1)
    assert c.state.steps["a"].outputs == {"n": 4}


# -- validate -----------------------------------------------------------------------------------------------

HEAD = """\
name: wf
inputs:
  env: {type: string}
  count: {type: number}
  dry: {type: boolean}
steps:
  build:
    run: [make]
    outputs: {version: "${{ result.stdout }}"}
  other:
    run: [x]
"""


def errors_of(steps: str) -> list[tuple[int, int, str]]:
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(HEAD + steps, "wf.yaml")
    return [(e.line, e.col, e.message) for e in caught.value.errors]


def test_the_head_is_valid() -> None:
    load_text(HEAD, "wf.yaml")
    load_text(
        HEAD
        + "  ok:\n    needs: [build]\n    if: steps.build.outputs.version != '' && inputs.dry\n    run: [y]\n",
        "wf.yaml",
    )


@pytest.mark.parametrize(
    ("step", "where", "message"),
    [
        (
            "    if: inputs.evn == 'prod'\n",
            (13, 9),
            "inputs.evn, which is not declared; did you mean 'env'?",
        ),
        (
            "    if: ${{ steps.biuld.outcome == 'success' }}\n",
            (13, 9),
            "steps.biuld, which is not a step; did you mean 'build'?",
        ),
        (
            "    if: ${{ steps.other.outcome == 'success' }}\n",
            (13, 9),
            "reads steps.other but does not need it; add 'other' to its needs",
        ),
        (
            "    needs: [build]\n    if: steps.build.outputs.verison\n",
            (14, 9),
            "does not declare; did you mean 'version'?",
        ),
        (
            "    needs: [build]\n    if: steps.build.outcom\n",
            (14, 9),
            "which a step does not have; did you mean 'outcome'?",
        ),
        ("    if: input.env\n", (13, 9), "'input' is not a context; did you mean 'inputs'?"),
        ("    if: contain(inputs.env, 'x')\n", (13, 9), "Did you mean 'contains'?"),
        ("    if: contains(inputs.env)\n", (13, 9), "Too few parameters supplied"),
        (
            "    if: inputs.count == 'three'\n",
            (13, 9),
            "compares inputs.count (type number) with the string 'three'",
        ),
        (
            "    if: inputs.dry == 'yes'\n",
            (13, 9),
            "compares inputs.dry (type boolean) with the string 'yes'",
        ),
        ("    if: inputs.env == 3\n", (13, 9), "compares inputs.env (type string) with the number 3"),
        ("    if: inputs.env and inputs.dry\n", (13, 9), "`and` is written `&&`"),
        ('    env: {X: "${{ inputs.env | upper }}"}\n', (13, 14), "Jinja filters"),
    ],
)
def test_validate_reports_expression_mistakes(step: str, where: tuple[int, int], message: str) -> None:
    text = "  probe:\n" + step + "    run: [p]\n"
    errors = errors_of(text)
    assert any((line, col) == where and message in m for line, col, m in errors), errors


def test_validate_reports_an_unclosed_expression() -> None:
    [(line, col, message)] = errors_of('  probe:\n    run: [echo, "${{ inputs.env"]\n')
    assert (line, col) == (13, 17) and "never closed" in message


def test_a_fan_out_step_env_reads_item_and_index_per_item() -> None:
    c = core(
        {
            "each": {
                "for_each": "${{ fromJSON('[5, 6]') }}",
                "run": ["x"],
                "env": {"N": "${{ index }}-${{ item }}"},
            }
        }
    )
    d = c.advance(Start(), 0)
    assert [e.params["env"] for e in d.effects if isinstance(e, StartStep)] == [{"N": "0-5"}, {"N": "1-6"}]


def test_if_may_be_a_yaml_boolean_or_number() -> None:
    loaded = load_text(
        "name: x\nsteps:\n  a:\n    if: false\n    run: [x]\n  b:\n    if: 1\n    run: [y]\n", "x.yaml"
    )
    assert loaded.spec.steps["a"].if_ == "false" and loaded.spec.steps["b"].if_ == "1"
    assert started(Core(RunState("r", loaded.spec, {})).advance(Start(), 0)) == ["b"]


def test_validate_reports_an_if_that_is_always_true() -> None:
    errors = errors_of("  probe:\n    if: ${{ inputs.dry }} && ${{ inputs.env == 'x' }}\n    run: [p]\n")
    assert any("always true" in m for _, _, m in errors), errors


def test_validate_reads_names_ignoring_case_as_github_does() -> None:
    text = "  ok:\n    needs: [build]\n    if: INPUTS.Env == 'x' && Steps.BUILD.Outputs.VERSION && steps.build.OUTCOME\n    run: [y]\n"
    load_text(HEAD + text, "wf.yaml")
    errors = errors_of("  probe:\n    if: inputs.COUNT == 'three'\n    run: [p]\n")
    assert any("compares inputs.COUNT (type number)" in m for _, _, m in errors), errors
