"""Workflow files to validated ``Workflow`` models, or to every error in the file with its line and column.

YAML is parsed with ruamel.yaml's round-trip loader, which keeps the position of every key and value;
JSON files are read the same way (JSON is YAML). The content hash of the exact text pins a run's version.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from engine.diagnostics import Issue, issues_from
from engine.references import reference_issues
from engine.source_map import locate, parse_yaml, plain
from engine.spec import Workflow
from engine.yaml_bounds import MAX_BYTES, size_problem

SUFFIXES = (".yaml", ".yml", ".json")


class WorkflowError(Exception):
    """One problem in a workflow file, at a 1-based line and column."""

    def __init__(self, path: str, line: int, col: int, message: str) -> None:
        super().__init__(path, line, col, message)
        self.path, self.line, self.col, self.message = path, line, col, message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class WorkflowInvalid(Exception):
    """Every problem found in one workflow file, sorted by position."""

    def __init__(self, errors: Iterable[WorkflowError]) -> None:
        unique = {(e.line, e.col, e.message): e for e in errors}
        self.errors = [unique[key] for key in sorted(unique)]
        super().__init__("\n".join(str(e) for e in self.errors))


class WorkflowNotFound(WorkflowError, LookupError):
    """No workflow has the name asked for; the message suggests the closest one. It has no position."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(path, 0, 0, message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class LoadedWorkflow:
    """A validated workflow, with the exact text it came from and that text's sha256."""

    spec: Workflow
    source: str
    path: str
    digest: str


def load_text(text: str, source: str) -> LoadedWorkflow:
    """Parse and validate workflow text; ``source`` names it in errors (usually its path)."""
    root, syntax = parse_yaml(text)
    errors = [WorkflowError(source, line, col, message) for line, col, message in syntax]
    if root is None and errors:
        raise WorkflowInvalid(errors)
    if not isinstance(root, CommentedMap):
        got = "an empty file" if root is None else f"a {type(plain(root)).__name__}"
        message = f"a workflow file must be a mapping with 'name:' and 'steps:' keys, got {got}"
        raise WorkflowInvalid([*errors, WorkflowError(source, 1, 1, message)])
    data = plain(root)
    issues: list[Issue] = []
    spec: Workflow | None = None
    try:
        spec = Workflow.model_validate(data)
    except ValidationError as exc:
        issues += issues_from(exc, data)
    issues += reference_issues(data)
    errors += [WorkflowError(source, *locate(root, issue.loc, issue.at), issue.message) for issue in issues]
    if errors or spec is None:
        raise WorkflowInvalid(errors)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    folder = str(Path(source).resolve().parent) if source and not source.startswith("<") else None
    return LoadedWorkflow(spec=spec.in_folder(folder), source=text, path=source, digest=digest)


def load_workflow(path: Path) -> LoadedWorkflow:
    """Read and validate one workflow file; raise WorkflowInvalid with every problem found."""
    try:
        # Bytes, not read_text: universal newlines would change the text and so the digest.
        text = _read(Path(path))
    except OSError as exc:
        raise WorkflowInvalid(
            [WorkflowError(str(path), 1, 1, f"cannot read the file: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise WorkflowInvalid([WorkflowError(str(path), 1, 1, "the file is not UTF-8 text")]) from None
    problem = size_problem(text)
    if problem is not None:
        raise WorkflowInvalid([WorkflowError(str(path), *problem)])
    return load_text(text, str(path))


def _read(path: Path) -> str:
    """The file's text; past the size limit only a prefix is read (a huge file is refused unread)."""
    with path.open("rb") as file:
        data = file.read(4 * MAX_BYTES + 1)  # UTF-8 takes at most 4 bytes a character
    if len(data) > 4 * MAX_BYTES:
        data = data[: MAX_BYTES + 1]
        return data.decode("utf-8", errors="replace")
    return data.decode("utf-8")


def workflow_files(directory: Path) -> list[Path]:
    """The *.yaml, *.yml and *.json files directly inside a folder, sorted by name."""
    return sorted(p for p in Path(directory).iterdir() if p.suffix in SUFFIXES and p.is_file())


def load_dir(directory: Path) -> tuple[list[LoadedWorkflow], list[WorkflowError]]:
    """Every valid workflow in a folder, and the errors of the others (a reused name is an error)."""
    loaded: list[LoadedWorkflow] = []
    errors: list[WorkflowError] = []
    for file in workflow_files(directory):
        try:
            loaded.append(load_workflow(file))
        except WorkflowInvalid as exc:
            errors += exc.errors
    clashes = _name_clashes(loaded)
    clashing = {error.path for error in clashes}
    return [w for w in loaded if w.path not in clashing], errors + clashes


def validate_paths(paths: list[Path]) -> list[tuple[Path, list[WorkflowError]]]:
    """Validate files, and every workflow file in folders; an empty list means the file is valid."""
    listed = [f for p in paths for f in (workflow_files(p) if Path(p).is_dir() else [Path(p)])]
    files = list({f.resolve(): f for f in reversed(listed)}.values())[::-1]  # each file once, first mention
    results: list[tuple[Path, list[WorkflowError]]] = []
    loaded: list[LoadedWorkflow] = []
    for file in files:
        try:
            loaded.append(load_workflow(file))
            results.append((file, []))
        except WorkflowInvalid as exc:
            results.append((file, exc.errors))
    for clash in _name_clashes(loaded):
        next(errors for file, errors in results if str(file) == clash.path).append(clash)
    return results


def find_workflow(directory: Path, name_or_path: str) -> Path:
    """The file of a workflow given by path, file stem or ``name:``; raise WorkflowNotFound if none."""
    given = Path(name_or_path)
    if given.suffix in SUFFIXES or len(given.parts) > 1:
        if given.is_file():
            return given
        raise WorkflowNotFound(str(given), f"no workflow file at {given}")
    for suffix in SUFFIXES:
        candidate = Path(directory) / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    files = workflow_files(directory) if Path(directory).is_dir() else []
    by_name = {name: file for file in files if (name := _declared_name(file))}
    if name_or_path in by_name:
        return by_name[name_or_path]
    available = sorted({f.stem for f in files} | set(by_name))
    close = difflib.get_close_matches(name_or_path, available, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{close[0]}'?"
    else:
        hint = f"available: {', '.join(available)}" if available else "the folder holds no workflows"
    raise WorkflowNotFound(str(directory), f"no workflow named '{name_or_path}' in {directory}; {hint}")


def _declared_name(file: Path) -> str | None:
    try:
        root, _ = parse_yaml(_read(file))
    except (OSError, UnicodeDecodeError):
        return None
    name = root.get("name") if isinstance(root, CommentedMap) else None
    return str(name) if isinstance(name, str) else None


def _name_clashes(loaded: list[LoadedWorkflow]) -> list[WorkflowError]:
    first: dict[str, LoadedWorkflow] = {}
    errors: list[WorkflowError] = []
    for workflow in loaded:
        other = first.setdefault(workflow.spec.name, workflow)
        if other is not workflow:
            root, _ = parse_yaml(workflow.source)
            line, col = locate(root, ("name",), "value")
            message = (
                f"workflow name '{workflow.spec.name}' is already used by {other.path}; rename one of them"
            )
            errors.append(WorkflowError(workflow.path, line, col, message))
    return errors


def parse_stored(text: str, path: str) -> Workflow:
    """A definition stored when its run started (validated then): parsed fast, without positions."""
    from ruamel.yaml import YAML

    try:
        return Workflow.model_validate(YAML(typ="safe").load(text))
    except Exception:
        # A stored text that no longer fits the models (an older format): the full loader explains why.
        return load_text(text, path).spec
