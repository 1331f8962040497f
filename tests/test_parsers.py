"""Tool-call formats both ways: instructions rendered, replies parsed, malformed ones named."""

from __future__ import annotations

import json

import pytest
from turnwise.tools import ToolRegistry, ToolResult, tool
from turnwise.tools.parsers import ActionParser, HermesParser, XMLTagParser, make_parser


@tool
def search(query: str) -> str:
    """Search the web.

    Args:
        query: the search query.
    """
    return query


@tool
def python(code: str) -> str:
    """Run Python code and return what it prints.

    Args:
        code: a Python program.
    """
    return code


@tool
def add(a: int, b: int = 0) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture()
def registry():
    return ToolRegistry([search, python, add])


def result(name, content):
    return ToolResult(call_id="c", name=name, content=content)


# ---------------------------------------------------------------- hermes / qwen json


def test_hermes_instructions_list_every_schema(registry):
    text = HermesParser(registry, max_calls=2).instructions()
    schemas = text.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(s)["function"]["name"] for s in schemas] == ["search", "python", "add"]
    assert '<tool_call>{"name": "<function name>", "arguments": {"<argument>": <value>}}</tool_call>' in text
    assert "Make at most 2 calls per reply." in text and "<answer>your answer</answer>" in text


def test_hermes_parses_calls_after_thinking(registry):
    parsed = HermesParser(registry).parse(
        '<think>I could <tool_call>{"name": "nope"}</tool_call></think>Let me look.\n'
        '<tool_call>{"name": "search", "arguments": {"query": "capital of France"}}</tool_call>\n'
        '<tool_call>\n```json\n{"name": "add", "arguments": "{\\"a\\": 2, \\"b\\": \\"3\\"}"}\n```\n</tool_call>')
    assert not parsed.invalid and parsed.answer is None
    assert [(c.name, c.arguments) for c in parsed.calls] == [
        ("search", {"query": "capital of France"}), ("add", {"a": 2, "b": 3})]
    assert parsed.calls[0].id != parsed.calls[1].id


def test_a_thought_the_prompt_opened_does_not_count(registry):
    """DeepSeek-R1's and Qwen3.5's prompts open <think>: the reply starts inside the thought."""
    reply = ('maybe <tool_call>{"name": "nope"}</tool_call>\n</think>\n\n'
             '<tool_call>{"name": "search", "arguments": {"query": "Paris"}}</tool_call>')
    assert [c.name for c in HermesParser(registry).parse(reply).calls] == ["search"]
    assert XMLTagParser(registry, tags={"search": "search"}).parse(
        "<search>x</search></think><answer>Paris</answer>").answer == "Paris"


def test_hermes_answer_and_plain_text(registry):
    assert HermesParser(registry).parse("So: <answer> Paris </answer>").answer == "Paris"
    chat = HermesParser(registry, answer_tag=None)
    assert chat.parse("<think>easy</think>It is Paris.").answer == "It is Paris."


@pytest.mark.parametrize("reply, error", [
    ('<tool_call>{"name": "search", "arguments": {"query": "x"}</tool_call>',
     "tool call: not valid JSON (Expecting ',' delimiter at line 1 column 47)"),
    ('<tool_call>{"name": "browse", "arguments": {}}</tool_call>',
     "tool call: unknown tool 'browse'; available tools: search, python, add"),
    ('<tool_call>{"name": "add", "arguments": {"a": "two"}}</tool_call>',
     "tool call: invalid arguments for 'add': argument 'a': Input should be a valid integer"),
    ('<tool_call>{"name": "add", "arguments": {"b": 1}}</tool_call>',
     "argument 'a' is required"),
    ('<tool_call>{"name": "add", "arguments": [1, 2]}</tool_call>',
     '"arguments" must be a JSON object, got list'),
    ('<tool_call>["search"]</tool_call>', 'expected a JSON object with "name" and "arguments", got list'),
    ('<tool_call>{"name": "search", "arguments": {"query": "x"}}',
     "a <tool_call> is opened but never closed with </tool_call>"),
    ('<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call><answer>y</answer>',
     "a response either calls tools or gives the final answer, not both"),
    ("I am not sure.", "no tool call and no <answer>...</answer> found"),
    ("<answer>a</answer><answer>b</answer>", "2 <answer> blocks; give exactly one final answer"),
])
def test_hermes_malformed_calls_are_invalid_with_a_precise_error(registry, reply, error):
    parsed = HermesParser(registry).parse(reply)
    assert parsed.invalid and not parsed.calls and parsed.answer is None
    assert error in parsed.error


def test_hermes_two_calls_where_one_is_allowed(registry):
    one = HermesParser(registry, max_calls=1)
    call = '<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>'
    parsed = one.parse(call + call)
    assert parsed.invalid and parsed.error == "2 tool calls in one response; at most 1 is allowed"
    assert one.parse(call).calls[0].arguments == {"query": "x"}


def test_hermes_results_and_errors(registry):
    parser = HermesParser(registry)
    role, text = parser.format_results([result("search", "Doc 1"), result("add", "5")])
    assert role == "tool"
    assert text == "<tool_response>\nDoc 1\n</tool_response>\n<tool_response>\n5\n</tool_response>"
    role, text = parser.format_error("no tool call")
    assert role == "user" and text.startswith("Invalid response: no tool call\nCall a tool as")


# ---------------------------------------------------------------- xml tags


def test_xml_instructions_and_parsing(registry):
    parser = XMLTagParser(registry, tags={"search": "search", "python": "python"})
    text = parser.instructions()
    assert ("- <search>the search query.</search>: Search the web. The result comes back inside "
            "<information></information>.") in text
    assert "- <python>a Python program.</python>: Run Python code and return what it prints. " \
           "The result comes back inside <result></result>." in text
    assert "Use at most 1 tool tag per reply" in text and "<answer>Paris</answer>" in text

    parsed = parser.parse("<think>need facts</think><search> capital of France </search>")
    assert [(c.name, c.arguments) for c in parsed.calls] == [("search", {"query": "capital of France"})]
    parsed = parser.parse("<python>\n```python\nprint(1 + 1)\n```\n</python>")
    assert parsed.calls[0].arguments == {"code": "print(1 + 1)"}
    assert parser.parse("<think>done</think><answer> Paris </answer>").answer == "Paris"

    role, text = parser.format_results([result("search", "Doc 1 Paris")])
    assert (role, text) == ("user", "<information>Doc 1 Paris</information>")
    assert parser.format_results([result("python", "2")])[1] == "<result>2</result>"


@pytest.mark.parametrize("reply, error", [
    ("<search>a</search><search>b</search>", "2 tool calls in one response; at most 1 is allowed"),
    ("<search>unclosed", "<search> is opened but never closed with </search>"),
    ("<search>  </search>", "<search> is empty"),
    ("<search>x</search><answer>y</answer>", "either calls tools or gives the final answer"),
    ("just text", "no tool call and no <answer>...</answer> found"),
])
def test_xml_malformed(registry, reply, error):
    parsed = XMLTagParser(registry, tags={"search": "search", "python": "python"}).parse(reply)
    assert parsed.invalid and error in parsed.error


def test_xml_rejects_tools_a_tag_cannot_call(registry):
    with pytest.raises(ValueError, match="must take exactly one required string argument"):
        XMLTagParser(registry)  # `add` takes integers
    with pytest.raises(ValueError, match="unknown tool 'web'"):
        XMLTagParser(registry, tags={"search": "web"})


# ---------------------------------------------------------------- actions


def test_action_parser_alone_and_with_a_tool(registry):
    plain = ActionParser(example="go to desk 1")
    assert plain.parse("<think>hm</think><action> go to desk 1 </action>").action == "go to desk 1"
    assert "<action>go to desk 1</action>" in plain.instructions()
    assert plain.parse("<action>a</action><action>b</action>").error == \
        "2 <action> tags; give exactly one action per reply"
    assert plain.parse("open it").error == "no <action>...</action> found"
    assert plain.parse("<action></action>").error == "<action> is empty"

    routed = ActionParser(registry, tool="search", answer_tag="answer")
    parsed = routed.parse("<action>weather Paris</action>")
    assert parsed.calls[0].name == "search" and parsed.calls[0].arguments == {"query": "weather Paris"}
    assert routed.parse("<answer>sunny</answer>").answer == "sunny"


def test_make_parser_names_what_is_allowed(registry):
    assert isinstance(make_parser("hermes", registry), HermesParser)
    with pytest.raises(ValueError, match=r"parser='json': allowed are \['action', 'hermes', 'xml'\]"):
        make_parser("json", registry)
    with pytest.raises(ValueError, match="parser options for 'hermes'"):
        make_parser("hermes", registry, tags={})


def test_no_reply_makes_a_parser_raise(registry):
    """Random splices of tags, JSON and junk: every parse ends in exactly one outcome."""
    import random

    pieces = ["<tool_call>", "</tool_call>", '{"name": "search", "arguments": {"query": "x"}}',
              '{"name": "add", "arguments": {"a": 1}}', '{"name":', "}", "<search>", "</search>",
              "<python>", "</python>", "<answer>", "</answer>", "<action>", "</action>",
              "<think>", "</think>", "```", "\n", "hello", '"', "{", "[1, 2]", "\\u0000", "é"]
    parsers = [HermesParser(registry), HermesParser(registry, answer_tag=None, max_calls=1),
               XMLTagParser(registry, tags={"search": "search", "python": "python"}),
               ActionParser(registry, tool="search", answer_tag="answer"), ActionParser()]
    rng = random.Random(0)
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for parser in parsers:
            parsed = parser.parse(text)
            outcomes = [parsed.invalid, parsed.answer is not None and not parsed.invalid,
                        bool(parsed.calls), parsed.action is not None and not parsed.calls]
            assert sum(outcomes) == 1, (parser.name, text, parsed)
            assert parsed.invalid == (parsed.error is not None)
