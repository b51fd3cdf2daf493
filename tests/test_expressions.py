"""GitHub Actions' expression language, case by case from GitHub's documentation.

Literals, operators and precedence, the coercion and comparison tables, property access and object
filters, every function with its edge cases, the bounds, and the wording of errors.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from engine.expressions import ExpressionError, evaluate

CTX: dict[str, Any] = {
    "inputs": {"env": "prod", "Service": "api", "count": 3, "flag": False, "list": [1, 2, 3], "none": None},
    "steps": {
        "build": {"outputs": {"version": "1.2.0", "count": "12"}, "outcome": "success"},
        "test": {"outputs": {"version": "x"}, "outcome": "failure"},
    },
    "obj": {"a": {"b": 1}, "c": {"b": 2}, "d": {"x": 3}, "e": [{"b": 4}, {"b": 5}], "f": "text"},
    "arr": [{"name": "one", "tags": ["a", "b"]}, {"name": "two", "tags": ["c"]}, "loose", 5],
}


def ev(text: str, contexts: dict[str, Any] | None = None) -> Any:
    return evaluate(text, CTX if contexts is None else contexts)


def fails(text: str, *parts: str, contexts: dict[str, Any] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        ev(text, contexts)
    for part in parts:
        assert part in str(caught.value), str(caught.value)
    return caught.value


# -- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("711", 711),
        ("-9.2", -9.2),
        ("+3", 3),
        (".5", 0.5),
        ("5.", 5),
        ("0xff", 255),
        ("0xFF", 255),
        ("0o17", 15),
        ("-2.99e-2", -0.0299),
        ("1e3", 1000),
        ("2E+2", 200),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("'Mona the Octocat'", "Mona the Octocat"),
        ("'It''s open source!'", "It's open source!"),
        ("''''", "'"),
        ("'a''b''c'", "a'b'c"),
        ("''", ""),
        ("'}}'", "}}"),
        ("", None),
        ("   ", None),
    ],
)
def test_literals(text: str, value: Any) -> None:
    got = ev(text)
    assert got == value and type(got) is type(value)


def test_nan_literal() -> None:
    assert math.isnan(ev("NaN"))


@pytest.mark.parametrize("text", ["1.2.3", "0x", "0xg1", "1e", "12abc", "-", "+", "--1", "'open", '"double"'])
def test_bad_literals_are_lexing_errors(text: str) -> None:
    fails(text, "Unexpected symbol", "Located at position 1")


def test_keywords_are_case_sensitive() -> None:
    fails("True", "Unrecognized named-value: 'True'", "`True` is written `true`")
    fails("NULL", "Unrecognized named-value: 'NULL'")


# -- operators and precedence -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("!true", False),
        ("!0", True),
        ("!''", True),
        ("!'a'", False),
        ("!null", True),
        ("!NaN", True),
        ("!!inputs.list", True),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("1 == 1", True),
        ("1 != 1", False),
        ("true && 'yes'", "yes"),
        ("'' && 'yes'", ""),
        ("0 && 'yes'", 0),
        ("null || 'fallback'", "fallback"),
        ("'a' || 'b'", "a"),
        ("false || 0", 0),
        ("1 && 2 && 3", 3),
        ("1 && 0 && 3", 0),
        ("0 || '' || null", None),
        ("true || false && false", True),  # && binds tighter than ||
        ("(true || false) && false", False),
        ("!true == false", True),  # ! binds tighter than ==
        ("1 < 2 == true", True),  # < binds tighter than ==
        ("false == 1 < 2", False),
        ("3 < 2 < 1", True),  # left to right: (3 < 2) < 1 is false < 1 is 0 < 1
        ("1 == 1 == 1", True),  # (1 == 1) == 1 is true == 1
        ("2 == 2 == 2", False),
        ("!(1 == 2)", True),
        ("((((1))))", 1),
        ("inputs.flag && 'a' || 'b'", "b"),  # GitHub's ternary idiom
        ("inputs.env == 'prod' && 'big' || 'small'", "big"),
    ],
)
def test_operators(text: str, value: Any) -> None:
    got = ev(text)
    assert got == value and type(got) is type(value), (text, got)


def test_and_or_short_circuit_without_evaluating_the_rest() -> None:
    assert ev("false && fromJSON('')") is False
    assert ev("true || fromJSON('')") is True
    fails("true && fromJSON('')", "empty input")


# -- coercion and comparison tables --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # null -> 0
        ("null == 0", True),
        ("null == null", True),
        ("null == false", True),
        ("null == ''", True),
        ("null == 'a'", False),
        ("null < 1", True),
        ("null > -1", True),
        # booleans -> 0 / 1
        ("true == 1", True),
        ("false == 0", True),
        ("true == 2", False),
        ("true == 'true'", False),
        ("true == '1'", True),
        ("false == ''", True),
        ("true > false", True),
        ("false < true", True),
        ("true >= true", True),
        # strings -> numbers: JavaScript's Number()
        ("'' == 0", True),
        ("' ' == 0", True),
        ("'3' == 3", True),
        ("' 3 ' == 3", True),
        ("'3.0' == 3", True),
        ("'0x10' == 16", True),
        ("'1e2' == 100", True),
        ("'abc' == 0", False),
        ("'abc' != 0", True),
        ("'10' > 9", True),
        ("'10' > '9'", False),  # two strings compare as text
        ("'Infinity' == Infinity", True),
        ("'-Infinity' < 0", True),
        # NaN is equal to nothing and ordered with nothing
        ("NaN == NaN", False),
        ("NaN != NaN", True),
        ("NaN < 1", False),
        ("NaN > 1", False),
        ("NaN <= NaN", False),
        ("'abc' < 1", False),
        ("'abc' >= 1", False),
        # strings ignore case
        ("'abc' == 'ABC'", True),
        ("'abc' != 'ABC'", False),
        ("'a' < 'B'", True),
        ("'B' > 'a'", True),
        ("'abc' <= 'ABC'", True),
        ("'Straße' == 'STRASSE'", True),
        # objects and arrays: by identity only, never coerced
        ("inputs.list == inputs.list", True),
        ("fromJSON('[]') == fromJSON('[]')", False),
        ("fromJSON('{}') == fromJSON('{}')", False),
        ("inputs.list == 0", False),
        ("inputs.list == 'Array'", False),
        ("inputs.list != null", True),
        ("obj.a == obj.a", True),
        ("obj.a == obj.c", False),
        ("obj.a < obj.c", False),
        ("obj.a > 0", False),
        # numbers
        ("1 == 1.0", True),
        ("0.1 < 0.2", True),
        ("-1 < 0", True),
        ("Infinity > 1e308", True),
        ("0 == -0", True),
    ],
)
def test_coercion_and_comparison(text: str, value: bool) -> None:
    assert ev(text) is value, text


@pytest.mark.parametrize(
    ("text", "truthy"),
    [
        ("null", False),
        ("false", False),
        ("0", False),
        ("-0", False),
        ("NaN", False),
        ("''", False),
        ("true", True),
        ("1", True),
        ("-1", True),
        ("Infinity", True),
        ("'0'", True),
        ("'false'", True),
        ("' '", True),
        ("inputs.list", True),
        ("fromJSON('[]')", True),
        ("fromJSON('{}')", True),
    ],
)
def test_truthiness(text: str, truthy: bool) -> None:
    assert ev(f"!!({text})") is truthy


# -- property access, indexing, object filters --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("inputs.env", "prod"),
        ("inputs['env']", "prod"),
        ("INPUTS.ENV", "prod"),  # contexts and keys ignore case
        ("inputs.service", "api"),
        ("inputs['SERVICE']", "api"),
        ("inputs.missing", None),
        ("inputs.missing.deeper.still", None),
        ("inputs.none.x", None),
        ("inputs.env.length", None),  # no properties on a string
        ("inputs.list[0]", 1),
        ("inputs.list[2]", 3),
        ("inputs.list[3]", None),
        ("inputs.list[-1]", None),  # not Python's last item
        ("inputs.list[1.7]", 2),  # whole part of the index
        ("inputs.list['1']", 2),  # a string index converts to a number
        ("inputs.list[true]", 2),
        ("inputs.list[null]", 1),
        ("inputs.list[NaN]", None),
        ("inputs.list[Infinity]", None),
        ("inputs.list['x']", None),
        ("inputs.list.foo", None),
        ("obj[1]", None),
        ('fromJSON(\'{"1": "one"}\')[1]', "one"),  # a number index on an object is its text
        ("obj[inputs.list]", None),
        ("steps.build.outputs.version", "1.2.0"),
        ("(inputs).env", "prod"),
        ('fromJSON(\'{"a": {"b": 7}}\').a.b', 7),
        ("arr[0].tags[1]", "b"),
        ("obj.*.b", [1, 2]),  # a filter skips objects without the key
        ("obj['*']", None),  # a quoted star is a key
        ("arr.*.name", ["one", "two"]),
        ("arr[*].name", ["one", "two"]),
        ("arr.*.tags.*", ["a", "b", "c"]),
        ("arr.*.tags[0]", ["a", "c"]),
        ("arr.*.tags[1]", ["b"]),
        ("obj.e.*.b", [4, 5]),
        ("steps.*.outcome", ["success", "failure"]),
        ("steps.*.outputs.version", ["1.2.0", "x"]),
        ("inputs.list.*", [1, 2, 3]),
        ("inputs.env.*", []),  # a filter on a string is empty
        ("inputs.missing.*", []),
        ("inputs.missing.*.x", []),
        ("fromJSON('[]').*", []),
        ('fromJSON(\'{"a": null, "b": {}}\').*.x', []),
        ("fromJSON('[{\"a\": null}, {}]').*.a", [None]),  # a present null is kept
    ],
)
def test_property_access(text: str, value: Any) -> None:
    assert ev(text) == value, text


def test_a_filter_result_is_an_array() -> None:
    assert ev("contains(steps.*.outcome, 'failure')") is True
    assert ev("join(arr.*.name, '+')") == "one+two"
    assert ev("toJSON(obj.*.b)") == "[\n  1,\n  2\n]"


def test_returned_objects_are_the_context_data() -> None:
    assert ev("inputs.list") == [1, 2, 3]
    assert ev("steps.build.outputs") == {"version": "1.2.0", "count": "12"}


@pytest.mark.parametrize(
    "text",
    [
        "'abc'[0]",
        "'abc'.length",
        "1.x",
        "null.x",
        "inputs.",
        "inputs[",
        "inputs[]",
        "inputs.[0]",
        "inputs..x",
    ],
)
def test_access_needs_a_context_a_call_or_a_group(text: str) -> None:
    fails(text, "Unexpected")


# -- functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("contains('Hello world', 'llo')", True),
        ("contains('Hello world', 'LLO')", True),
        ("contains('Hello', '')", True),
        ("contains('', 'a')", False),
        ("contains(123, 2)", True),
        ("contains(true, 'ru')", True),
        ("contains(null, '')", True),
        ("contains(inputs.list, 2)", True),
        ("contains(inputs.list, '2')", True),  # items compare with ==
        ("contains(inputs.list, 4)", False),
        ("contains(fromJSON('[\"Bug\", \"help wanted\"]'), 'bug')", True),
        ("contains(fromJSON('[]'), null)", False),
        ("contains(fromJSON('[null]'), null)", True),
        ("contains('abc', inputs.list)", False),
        ("contains(obj, 'a')", False),  # an object is not searched
        ("contains(inputs.list, inputs.list)", False),
        ("startsWith('Hello world', 'he')", True),
        ("startsWith('Hello world', 'world')", False),
        ("startsWith('abc', '')", True),
        ("startsWith(12, 1)", True),
        ("startsWith(inputs.list, 1)", False),
        ("startsWith('abc', inputs.list)", False),
        ("endsWith('Hello world', 'LD')", True),
        ("endsWith('Hello world', 'hello')", False),
        ("endsWith(1.5, 5)", True),
        ("endsWith(inputs.list, 3)", False),
        ("STARTSWITH('ab', 'A')", True),  # function names ignore case
        ("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),
        ("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}"),
        ("format('{0}{0}{1}', 'a', 'b')", "aab"),
        ("format('{1}{0}', 'a', 'b')", "ba"),
        ("format('no placeholders')", "no placeholders"),
        ("format('{{}}')", "{}"),
        ("format('}}{{')", "}{"),
        ("format('{0}', null)", ""),
        ("format('{0} {1}', true, false)", "true false"),
        ("format('{0}', 3.0)", "3"),
        ("format('{0}', 1.5)", "1.5"),
        ("format('{0}', 0.1)", "0.1"),
        ("format('{0}', inputs.list)", "Array"),
        ("format('{0}', obj)", "Object"),
        ("format('{0}', 1e21)", "1e+21"),
        ("format('{0}', 123456789012)", "123456789012"),
        ("format('{0}', -0.5)", "-0.5"),
        ("format('{0}', 1/1)" if False else "format('{0}', 0xff)", "255"),
        ("format(5)", "5"),
        ("join(inputs.list)", "1,2,3"),
        ("join(inputs.list, ' | ')", "1 | 2 | 3"),
        ("join(inputs.list, '')", "123"),
        ("join('abc', '-')", "abc"),  # a string is returned as it is
        ("join(5)", "5"),
        ("join(null)", ""),
        ("join(fromJSON('[]'))", ""),
        ("join(fromJSON('[null, true, 1.5, \"x\"]'))", ",true,1.5,x"),
        ("join(inputs.list, inputs.list)", "1,2,3"),  # a separator that is no text is ignored
        ("join(obj)", ""),
        ("join(fromJSON('[[1], {}]'))", "Array,Object"),
        ("toJSON(null)", "null"),
        ("toJSON(true)", "true"),
        ("toJSON(1)", "1"),
        ("toJSON(1.5)", "1.5"),
        ("toJSON(NaN)", "null"),
        ("toJSON('a\"b')", '"a\\"b"'),
        ("toJSON(fromJSON('[]'))", "[]"),
        ("toJSON(fromJSON('{}'))", "{}"),
        ("toJSON(inputs.list)", "[\n  1,\n  2,\n  3\n]"),
        (
            'toJSON(fromJSON(\'{"a": [1, {"b": null}]}\'))',
            '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ]\n}',
        ),
        ("fromJSON('1')", 1),
        ("fromJSON('1.5')", 1.5),
        ("fromJSON('true')", True),
        ("fromJSON('null')", None),
        ("fromJSON('\"text\"')", "text"),
        ("fromJSON(' [1, 2] ')", [1, 2]),
        ('fromJSON(\'{"a": {"b": [true]}}\')', {"a": {"b": [True]}}),
        ("fromJSON(5)", 5),
        ("fromJSON(toJSON(inputs.list))", [1, 2, 3]),
        ("fromJSON(steps.build.outputs.count) == 12", True),
        ("fromJSON('{\"Key\": 1}').key", 1),
        ("case(true, 'a', 'b')", "a"),
        ("case(false, 'a', 'b')", "b"),
        ("case(false, 'a', inputs.env == 'prod', 'p', 'd')", "p"),
    ],
)
def test_functions(text: str, value: Any) -> None:
    got = ev(text)
    assert got == value and type(got) is type(value), (text, got)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format('{0}')", "references more arguments than were supplied"),
        ("format('{1}', 'a')", "references more arguments than were supplied"),
        ("format('{')", "format string is invalid"),
        ("format('}')", "format string is invalid"),
        ("format('{a}', 1)", "format string is invalid"),
        ("format('{}', 1)", "format string is invalid"),
        ("format('{0', 1)", "format string is invalid"),
        ("fromJSON('')", "empty input"),
        ("fromJSON('   ')", "empty input"),
        ("fromJSON(null)", "empty input"),
        ("fromJSON('{')", "Error parsing JSON"),
        ("fromJSON('NaN')", "Error parsing JSON"),
        ("fromJSON('Infinity')", "Error parsing JSON"),
        ("fromJSON('[1,]')", "Error parsing JSON"),
        ("fromJSON(\"'a'\")", "Unexpected symbol"),
        ("case(1, 'a', 'b')", "case predicate must evaluate to a boolean value"),
    ],
)
def test_function_errors(text: str, message: str) -> None:
    error = fails(text, message)
    assert error.position is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("contains('a')", "Too few parameters supplied: 'contains'"),
        ("contains('a', 'b', 'c')", "Too many parameters supplied: 'contains'"),
        ("startsWith()", "Too few parameters supplied"),
        ("endsWith('a')", "Too few parameters supplied"),
        ("format()", "Too few parameters supplied"),
        ("join()", "Too few parameters supplied"),
        ("join(1, 2, 3)", "Too many parameters supplied"),
        ("toJSON()", "Too few parameters supplied"),
        ("toJSON(1, 2)", "Too many parameters supplied"),
        ("fromJSON(1, 2)", "Too many parameters supplied"),
        ("success(1)", "Too many parameters supplied"),
        ("hashFiles()", "Too few parameters supplied"),
        ("case(true, 1)", "Too few parameters supplied"),
        ("case(true, 1, false, 2)", "Even number of parameters supplied"),
        ("nope(1)", "Unrecognized function: 'nope'"),
        ("length(inputs.list)", "Unrecognized function: 'length'"),
    ],
)
def test_function_arity_is_checked_when_parsing(text: str, message: str) -> None:
    fails(text, message)
    fails(f"false && {text}", message)  # even where it would never run


def test_status_functions() -> None:
    assert ev("success()") is True and ev("always()") is True
    assert ev("failure()") is False and ev("cancelled()") is False
    assert evaluate("failure()", CTX, status="failure") is True
    assert evaluate("success()", CTX, status="failure") is False
    assert evaluate("cancelled()", CTX, status="cancelled") is True
    assert evaluate("always() && 'ran'", CTX, status="cancelled") == "ran"


def test_hash_files_reads_the_workflow_folder(tmp_path: Any) -> None:
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("two")
    root = str(tmp_path)
    one = evaluate("hashFiles('*.txt')", CTX, files_root=root)
    every = evaluate("hashFiles('**/*.txt')", CTX, files_root=root)
    assert len(one) == 64 and len(every) == 64 and one != every
    assert evaluate("hashFiles('**/*.txt', '!sub/**')", CTX, files_root=root) == one
    assert evaluate("hashFiles('*.none')", CTX, files_root=root) == ""
    with pytest.raises(ExpressionError, match="relative to the workflow's folder"):
        evaluate("hashFiles('../*')", CTX, files_root=root)
    with pytest.raises(ExpressionError, match="workflow's folder"):
        evaluate("hashFiles('*.txt')", CTX)


# -- number formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("1", "1"),
        ("1.0", "1"),
        ("-1", "-1"),
        ("0.5", "0.5"),
        ("1.25e2", "125"),
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("1e-7", "1e-7"),
        ("0.000001", "0.000001"),
        ("0.1234567890123456789", "0.123456789012346"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("NaN", "NaN"),
        ("-0", "0"),
    ],
)
def test_numbers_as_text(number: str, text: str) -> None:
    assert ev(f"format('{{0}}', {number})") == text
    assert ev(f"join({number})") == text


# -- contexts ---------------------------------------------------------------------------------------


def test_contexts_are_named_values_checked_before_evaluating() -> None:
    fails("nope", "Unrecognized named-value: 'nope'", "position 1")
    fails("true || nope.x", "Unrecognized named-value: 'nope'", "position 9")
    fails("nope == ", "Unrecognized named-value: 'nope'")  # the first problem is reported first
    assert evaluate("Inputs.ENV", {"inputs": {"env": "x"}}) == "x"


def test_an_error_carries_its_position() -> None:
    error = fails("inputs.env == 'a' &&", "Unexpected end of expression")
    assert error.position == 18 and error.syntax
    assert fails("1 = 2").position == 2


# -- bounds -----------------------------------------------------------------------------------------------


def test_length_bound() -> None:
    fails("'" + "a" * 21_000 + "'", "Exceeded max expression length 21000")


def test_depth_bound() -> None:
    assert ev("(" * 49 + "1" + ")" * 49) == 1
    fails("(" * 50 + "1" + ")" * 50, "Exceeded max expression depth 50")
    fails("!" * 100 + "true", "Exceeded max expression depth 50")
    fails("(" * 5000 + "1" + ")" * 5000, "Exceeded max expression depth")
    fails("inputs" + ".a" * 60, "Exceeded max expression depth")
    fails("format(" * 60 + "'x'" + ")" * 60, "Exceeded max expression depth")


def test_long_chains_do_not_recurse() -> None:
    assert ev(" == ".join(["1"] * 3000)) is True  # ((1 == 1) == 1) ... == 1, no RecursionError
    assert ev(" == ".join(["2"] * 3000)) is False
    assert ev(" && ".join(["1"] * 3000)) == 1
    assert ev(" < ".join(["1"] * 3000)) is False


def test_work_bound() -> None:
    big = {"x": [[list(range(100)) for _ in range(100)] for _ in range(100)]}
    with pytest.raises(ExpressionError, match="work bound"):
        evaluate("x.*.*.*", big)
    wide = {"x": list(range(1_100_000))}
    with pytest.raises(ExpressionError, match="work bound"):
        evaluate("contains(x, -1)", wide)


def test_result_size_bound() -> None:
    with pytest.raises(ExpressionError, match="result size bound"):
        evaluate("join(x, x.s)", {"x": ["a" * 1000] * 2000})
    with pytest.raises(ExpressionError, match="result size bound"):
        evaluate("format('{0}{0}{0}', x)", {"x": "a" * 400_000})


def test_deep_json_is_refused_not_crashed() -> None:
    fails("fromJSON(x)", "nested deeper", contexts={"x": "[" * 10_000 + "]" * 10_000})
    deep: list[Any] = []
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(ExpressionError, match="nested deeper"):
        evaluate("toJSON(x)", {"x": deep})


# -- errors in GitHub's words, with the GitHub spelling of Jinja habits --------------------------------------------


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("inputs.env and true", "`and` is written `&&`"),
        ("inputs.env or true", "`or` is written `||`"),
        ("not inputs.flag", "`not` is written `!`"),
        ("none", "`none` is written `null`"),
        ("inputs.env == None", "`None` is written `null`"),
        ("inputs.list | join(', ')", "`join(x, ', ')`"),
        ("inputs.env | upper", "Jinja filters"),
        ("'a' if inputs.flag else 'b'", "`c && x || y`"),
        ("inputs.env in ['a']", "`contains(list, x)`"),
        ("inputs.env is none", "`x == null`"),
        ("inputs.env = 'prod'", "equality is written `==`"),
        ('inputs.env == "prod"', "single quotes"),
        ("inputs.count + 1", "no arithmetic"),
        ("'a' ~ 'b'", "format("),
        ("inputs.flag & true", "`&` is written `&&`"),
    ],
)
def test_jinja_constructs_say_the_github_spelling(text: str, hint: str) -> None:
    fails(text, hint)


def test_unclosed_things() -> None:
    fails("(1", "Unexpected end of expression")
    fails("1 ==", "Unexpected end of expression")
    fails("contains('a', 'b'", "Unexpected symbol: 'EOF'")
    fails("inputs['env'", "Unexpected symbol: 'EOF'")
    fails("1 2", "Unexpected symbol: '2'")
    fails(")", "Unexpected symbol: ')'")
    fails("inputs.env == 'a' 'b'", "Unexpected symbol: 'b'")


def test_positions_are_counted_as_github_counts_them() -> None:
    fails("inputs.", "Unexpected symbol: 'EOF'. Located at position 7 within expression: inputs.")
    fails(
        "1 ==\n  2 )", "Unexpected symbol: ')'. Located at position 5 within expression"
    )  # from the line start
    fails("1 ==\n 'a", "Located at position 7 within expression")  # a lexing error counts from the start


def test_results_are_bounded_before_they_are_built() -> None:
    with pytest.raises(ExpressionError, match="result size bound"):
        evaluate(
            "join(x, format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', y))",
            {"x": list(range(100_000)), "y": "a" * 90_000},
        )
    with pytest.raises(ExpressionError, match="work bound"):
        evaluate("toJSON(x)", {"x": ["a" * 1_000_000] * 1000})
    with pytest.raises(ExpressionError, match="result size bound"):
        evaluate("format('{0}{0}', format('{0}{0}', format('{0}{0}', x)))", {"x": "a" * 200_000})


def test_from_json_keys_like_github() -> None:
    assert ev('fromJSON(\'{"a": 1, "A": 2, "b": 3, "b": 4}\')') == {"a": 1, "b": 4}
    assert ev('fromJSON(\'{"Key": 1, "KEY": 2}\').key') == 1


def test_only_ascii_digits_make_numbers() -> None:
    assert ev("'\u0663' == 3") is False  # an Arabic-Indic digit is not a number to JavaScript's Number()
    assert ev("'\u00b2' == 2") is False
    fails("\u0663", "Unexpected symbol")
