"""Loading workflow files: the example from the issue, every kind of mistake with its position, the schema.

Each file in tests/invalid/ states the errors it must produce in its first lines:
``# expect LINE:COL part of the message``, one line per error, in the order they are reported.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest

from engine.loader import (
    WorkflowError,
    WorkflowInvalid,
    WorkflowNotFound,
    find_workflow,
    load_dir,
    load_text,
    load_workflow,
    validate_paths,
)
from engine.schema import json_schema
from engine.source_map import parse_yaml, plain

INVALID = Path(__file__).parent / "invalid"
EXAMPLES = Path(__file__).parent.parent / "workflows"
EXPECT = re.compile(r"^# expect (\d+):(\d+) (.+)$", re.MULTILINE)

EXAMPLE = """\
name: deploy
description: Build, test and deploy a service
inputs:
  service: {type: string, required: true, description: Service to deploy}
  env: {type: string, enum: [staging, prod], default: staging}
concurrency: 4
timeout: 2h
steps:
  build:
    run: ["python3", "-c", "import os; print('built', os.environ['SERVICE'])"]
    env: {SERVICE: "${{ inputs.service }}"}
    timeout: 10m
    retry: {attempts: 3, backoff: exponential, initial: 1s, max: 1m}
    outputs:
      version: "${{ result.stdout }}"
  unit_tests:
    needs: [build]
    run: ["python3", "-c", "print('tests ok')"]
  lint:
    needs: [build]
    action: examples.actions:lint
  deploy:
    needs: [unit_tests, lint]
    if: "${{ inputs.env == 'staging' || inputs.env == 'prod' }}"
    run: ["python3", "-c", "print('deployed')"]
    compensate:
      run: ["python3", "-c", "print('rolled back')"]
  announce:
    needs: [deploy]
    trigger: all_done
    notify: {text: "Deploy of ${{ inputs.service }} finished: ${{ run.status }}"}
"""


def errors_of(text: str, source: str = "wf.yaml") -> list[tuple[int, int, str]]:
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(text, source)
    return [(e.line, e.col, e.message) for e in caught.value.errors]


def test_the_example_from_the_issue_loads_verbatim() -> None:
    loaded = load_text(EXAMPLE, "workflows/deploy.yaml")
    assert loaded.source == EXAMPLE
    assert loaded.path == "workflows/deploy.yaml"
    assert loaded.digest == hashlib.sha256(EXAMPLE.encode()).hexdigest()
    spec = loaded.spec
    assert list(spec.steps) == ["build", "unit_tests", "lint", "deploy", "announce"]
    assert spec.timeout == 7200 and spec.steps["build"].timeout == 600
    assert spec.steps["build"].retry is not None and spec.steps["build"].retry.max == 60
    assert spec.steps["deploy"].needs == ["unit_tests", "lint"]
    assert spec.steps["announce"].kind == "notify" and spec.inputs["env"].default == "staging"


def test_load_workflow_keeps_the_exact_bytes_for_the_digest(tmp_path: Path) -> None:
    file = tmp_path / "deploy.yaml"
    file.write_bytes(EXAMPLE.replace("\n", "\r\n").encode())
    loaded = load_workflow(file)
    assert loaded.source == EXAMPLE.replace("\n", "\r\n")
    assert loaded.digest == hashlib.sha256(file.read_bytes()).hexdigest()
    assert loaded.digest != load_text(EXAMPLE, "x").digest


def test_json_workflows_load_like_yaml(tmp_path: Path) -> None:
    data = plain(parse_yaml(EXAMPLE)[0])
    file = tmp_path / "deploy.json"
    file.write_text(json.dumps(data, indent="\t"))
    assert load_workflow(file).spec == load_text(EXAMPLE, "x").spec


@pytest.mark.parametrize("fixture", sorted(INVALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_invalid_workflow_reports_each_error_at_its_position(fixture: Path) -> None:
    text = fixture.read_text()
    expected = [(int(line), int(col), part) for line, col, part in EXPECT.findall(text)]
    assert expected, f"{fixture.name} states no '# expect' lines"
    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow(fixture)
    errors = caught.value.errors
    assert [(e.line, e.col) for e in errors] == [(line, col) for line, col, _ in expected], str(caught.value)
    for error, (_, _, part) in zip(errors, expected, strict=True):
        assert part in error.message
        assert str(error) == f"{fixture}:{error.line}:{error.col}: {error.message}"


@pytest.mark.parametrize(
    "payload",
    [
        "''.__class__.__mro__",
        "cycler.__init__.__globals__",
        "lipsum.__globals__",
        "self.__init__.__globals__",
        "config.items()",
        "request.application",
        "inputs|attr('__class__')",
        "inputs['__init__']",
        "''.__class__.__mro__[1].__subclasses__()",
    ],
)
def test_sandbox_escapes_are_refused_when_loading(payload: str) -> None:
    text = f'name: evil\nsteps:\n  probe:\n    run: [echo, "${{{{ {payload} }}}}"]\n'
    [(line, col, message)] = errors_of(text)
    assert (line, col) == (4, 17)
    assert message.startswith(f"step 'probe', field 'run[1]': expression '${{{{ {payload} }}}}': ")
    assert any(word in message for word in ("syntax error", "is not a context", "not declared"))


def test_every_error_in_a_file_is_reported_sorted_by_position() -> None:
    text = "name: x\nsteps:\n  b:\n    run: [y]\n    needs: [zz]\n  a:\n    run: hello\n    retry: 3\n"
    assert [(line, col) for line, col, _ in errors_of(text)] == [(5, 13), (7, 10), (8, 12)]


def test_guard_rail_on_the_number_of_steps() -> None:
    text = "name: big\nsteps:\n" + "".join(f"  s{i}: {{run: [x]}}\n" for i in range(501))
    [(line, col, message)] = errors_of(text)
    assert (line, col) == (2, 1)
    assert "at most 500 steps and this one has 501; split it into sub-workflows" in message


@pytest.mark.parametrize(("text", "got"), [("", "an empty file"), ("- a\n", "a list"), ("hello\n", "a str")])
def test_a_file_that_is_not_a_mapping(text: str, got: str) -> None:
    [(line, col, message)] = errors_of(text)
    assert (line, col) == (1, 1) and message.endswith(f"got {got}")


def test_tabs_in_yaml_are_explained() -> None:
    [(line, col, message)] = errors_of("name: x\nsteps:\n\tbuild: {run: [x]}\n")
    assert (line, col) == (3, 1) and "YAML does not allow tabs" in message


def test_outputs_read_results_and_workflow_outputs_read_any_step() -> None:
    text = EXAMPLE + "outputs:\n  version: ${{ steps.build.outputs.version }}\n"
    assert load_text(text, "x").spec.outputs == {"version": "${{ steps.build.outputs.version }}"}
    bad = EXAMPLE + "outputs:\n  version: ${{ steps.biuld.outputs.version }}\n"
    [(line, col, message)] = errors_of(bad)
    assert (line, col) == (
        33,
        12,
    ) and "reads steps.biuld, which is not a step; did you mean 'build'?" in message


def test_load_dir_keeps_valid_workflows_and_reports_the_rest(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(EXAMPLE)
    (tmp_path / "copy.yml").write_text(EXAMPLE)
    (tmp_path / "broken.yaml").write_text("name: broken\nsteps: {}\n")
    (tmp_path / "notes.txt").write_text("not a workflow")
    loaded, errors = load_dir(tmp_path)
    assert [w.path for w in loaded] == [str(tmp_path / "copy.yml")]
    assert [(Path(e.path).name, e.line, e.col) for e in errors] == [
        ("broken.yaml", 2, 1),
        ("deploy.yaml", 1, 7),
    ]
    assert "workflow name 'deploy' is already used by" in errors[1].message


def test_validate_paths_takes_folders_and_files(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(EXAMPLE)
    (tmp_path / "bad.json").write_text('{"name": "bad", "steps": {"a": {"run": "ls"}}}')
    other = tmp_path / "elsewhere" / "deploy.yml"
    other.parent.mkdir()
    other.write_text(EXAMPLE)
    results = validate_paths([tmp_path, tmp_path / "deploy.yaml", other])
    assert [(p.name, len(errors)) for p, errors in results] == [
        ("bad.json", 1),
        ("deploy.yaml", 0),
        ("deploy.yml", 1),
    ]
    assert (results[0][1][0].line, results[0][1][0].col) == (1, 40)
    assert str(results[2][1][0]).startswith(f"{other}:1:7: workflow name 'deploy' is already used by")
    [[missing]] = [errors for _, errors in validate_paths([tmp_path / "nope.yaml"])]
    assert "cannot read the file" in missing.message


def test_find_workflow_by_path_stem_or_name_with_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(EXAMPLE)  # declares name: deploy
    (tmp_path / "nightly.yml").write_text("name: nightly-build\nsteps: {a: {run: [x]}}\n")
    assert find_workflow(tmp_path, "release") == tmp_path / "release.yaml"
    assert find_workflow(tmp_path, "deploy") == tmp_path / "release.yaml"
    assert find_workflow(tmp_path, "nightly-build") == tmp_path / "nightly.yml"
    assert find_workflow(tmp_path, str(tmp_path / "nightly.yml")) == tmp_path / "nightly.yml"
    with pytest.raises(WorkflowNotFound, match=r"no workflow named 'deplyo'.*did you mean 'deploy'"):
        find_workflow(tmp_path, "deplyo")
    with pytest.raises(WorkflowNotFound, match="available: deploy, nightly, nightly-build, release"):
        find_workflow(tmp_path, "zzz")
    with pytest.raises(WorkflowNotFound, match="no workflow file at") as caught:
        find_workflow(tmp_path, "missing/file.yaml")
    assert isinstance(caught.value, WorkflowError | LookupError)  # callers catch either


def validators() -> list[jsonschema.protocols.Validator]:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    # The YAML language server validates with draft-07 semantics, so the schema must work there too.
    return [jsonschema.Draft202012Validator(schema), jsonschema.Draft7Validator(schema)]


def test_schema_describes_the_format() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and "$id" not in schema
    step = schema["$defs"]["Step"]["properties"]
    assert step["depends_on"]["anyOf"] == step["needs"]["anyOf"]
    assert {"type": "string"} in step["notify"]["anyOf"]
    assert any("pattern" in option for option in step["timeout"]["anyOf"])


def test_every_valid_example_validates_against_the_schema() -> None:
    texts = [EXAMPLE] + [p.read_text() for p in sorted(EXAMPLES.glob("*.y*ml"))]
    shorthand = (
        "name: s\nsteps:\n  a: {notify: hi}\n  b: {wait: 1h30m, depends_on: a}\n  c: {wait: 90, needs: b}\n"
    )
    for text in [*texts, shorthand]:
        load_text(text, "x")
        for validator in validators():
            assert list(validator.iter_errors(plain(parse_yaml(text)[0]))) == []


@pytest.mark.parametrize(
    "step",
    [
        "{run: [x], http: {url: u}}",
        "{}",
        "{run: [x], nedds: [a]}",
        "{run: [x], timeout: 5 mins}",
        "{wait: soon}",
    ],
)
def test_schema_rejects_what_the_loader_rejects(step: str) -> None:
    data = plain(parse_yaml(f"name: s\nsteps:\n  a: {step}\n")[0])
    for validator in validators():
        assert not validator.is_valid(data)
