"""Conversations rendered through each model's chat template by the parity test."""
import copy

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def u(text):
    return {"role": "user", "content": text}


def a(text, **extra):
    msg = {"role": "assistant", "content": text}
    msg.update(extra)
    return msg


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — températures in °C",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. 東京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": 'Search the web for "exact" phrases\nand return results',
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "number", "default": 2.5}},
            "required": ["query"],
        },
    },
}


def tool_call(name, arguments, wrap=True):
    call = {"name": name, "arguments": arguments}
    return {"type": "function", "id": "call_" + name, "function": call} if wrap else call


# Plain chats every template supports (roles alternate user/assistant).
BASIC = {
    "single_user": [u("Hello!")],
    "system_user": [SYSTEM, u("What is 2+2?")],
    "multi_turn": [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke."), a("Why did the chicken cross the road?"), u("Why?")],
    "system_multi_turn": [SYSTEM, u("Hi"), a("Hello."), u("Bye")],
    "unicode_emoji": [u("Grüße aus München 👋🏽 — ça va? 日本語もOK 🚀"), a("Ja! 😀 ¿Qué tal? Ελληνικά"), u("👍")],
    "empty_content": [u(""), a(""), u("still there?")],
    "whitespace_content": [u("  padded with spaces \n\n"), a("\n\nleading newlines"), u("\ttabs\t")],
    "special_chars": [u('quotes \' " and backslash \\ and {{ braces }} {% tags %}'), a("<b>html</b> & <|im_end|>"), u("done")],
    "multiline": [SYSTEM, u("line one\nline two\n\nline four"), a("```python\nprint('hi')\n```"), u("thanks")],
    "ends_with_assistant": [u("Say hi"), a("hi")],
    "long_chat": [x for i in range(6) for x in (u(f"question {i}"), a(f"answer {i}"))] + [u("last question")],
}


def with_generation_prompt(convs):
    """Each conversation with add_generation_prompt false and true."""
    cases = {}
    for name, msgs in convs.items():
        for agp in (False, True):
            cases[f"{name}-agp{int(agp)}"] = {"messages": copy.deepcopy(msgs), "add_generation_prompt": agp}
    return cases


def llama3_cases():
    cases = with_generation_prompt(BASIC)
    cases["tool_role_message"] = {"messages": [u("weather?"), {"role": "ipython", "content": '{"temp": 21}'}]}
    cases["system_only"] = {"messages": [SYSTEM], "add_generation_prompt": True}
    return cases


def gemma3_cases():
    cases = with_generation_prompt(BASIC)
    cases["content_parts"] = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  What is in this picture?  "}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        ],
        "add_generation_prompt": True,
    }
    # raise_exception cases: the message must match jinja2's exactly.
    cases["err_two_users"] = {"messages": [u("a"), u("b")]}
    cases["err_starts_with_assistant"] = {"messages": [a("hi"), u("b")], "add_generation_prompt": True}
    cases["err_system_then_assistant"] = {"messages": [SYSTEM, a("hi")]}
    cases["err_content_none"] = {"messages": [{"role": "user", "content": None}]}
    cases["err_content_number"] = {"messages": [{"role": "user", "content": 42}]}
    return cases


def qwen3_cases():
    cases = with_generation_prompt(BASIC)
    think = "<think>\nLet me think about it.\n</think>\n\nThe answer is 4."
    cases["think_in_last_turn"] = {"messages": [u("2+2?"), a(think)]}
    cases["think_in_history"] = {"messages": [u("2+2?"), a(think), u("and 3+3?")], "add_generation_prompt": True}
    cases["reasoning_content_field"] = {
        "messages": [SYSTEM, u("2+2?"), a("The answer is 4.", reasoning_content="Adding two and two.")]
    }
    cases["reasoning_content_none"] = {"messages": [u("hi"), a("<think>x</think>y", reasoning_content=None)]}
    cases["enable_thinking_false"] = {"messages": [u("hi")], "add_generation_prompt": True, "enable_thinking": False}
    cases["enable_thinking_true"] = {"messages": [u("hi")], "add_generation_prompt": True, "enable_thinking": True}
    cases["later_system_message"] = {"messages": [u("hi"), a("hello"), {"role": "system", "content": "Now be terse."}, u("ok")]}
    cases["tools_no_system"] = {"messages": [u("Weather in Paris?")], "tools": [WEATHER_TOOL], "add_generation_prompt": True}
    cases["tools_with_system"] = {"messages": [SYSTEM, u("Find news")], "tools": [WEATHER_TOOL, SEARCH_TOOL], "add_generation_prompt": True}
    cases["tool_call_round_trip"] = {
        "messages": [
            SYSTEM,
            u("What's the weather in Tokyo?"),
            a("", tool_calls=[tool_call("get_weather", {"city": "東京", "unit": "celsius", "days": 2})]),
            {"role": "tool", "content": '{"temperature": 21.5, "condition": "sunny ☀️"}'},
            a("It is 21.5 °C and sunny in Tokyo."),
            u("Thanks!"),
        ],
        "tools": [WEATHER_TOOL],
        "add_generation_prompt": True,
    }
    cases["tool_call_with_content_and_think"] = {
        "messages": [
            u("Search two things"),
            a(
                "<think>\nI should call search twice.\n</think>\n\nLet me search.",
                tool_calls=[
                    tool_call("search", {"query": "jinja2", "limit": 3, "exact": True, "filters": None, "ratio": 0.5}),
                    tool_call("search", '{"query": "already a json string"}'),
                ],
            ),
            {"role": "tool", "content": "result one"},
            {"role": "tool", "content": "result two"},
        ],
        "tools": [SEARCH_TOOL],
        "add_generation_prompt": True,
    }
    cases["tool_call_unwrapped"] = {
        "messages": [u("weather"), a(None or "", tool_calls=[tool_call("get_weather", {"city": "Oslo"}, wrap=False)])],
        "tools": [WEATHER_TOOL],
    }
    cases["multi_step_tool_response_user"] = {
        "messages": [
            u("start"),
            a("calling", tool_calls=[tool_call("search", {"query": "x"})]),
            u("<tool_response>\nraw tool output\n</tool_response>"),
            a("<think>\nreasoning after tool\n</think>\n\nfinal"),
        ]
    }
    cases["tool_first_message"] = {"messages": [{"role": "tool", "content": "orphan result"}, u("hi")]}
    cases["err_no_messages"] = {"messages": []}
    return cases
