// Unit tests of the chat-template interpreter. The expected strings of the
// rendering tests were produced by running Python jinja2 3.1.4 configured as
// transformers configures it (tests/chat_template/ct_jinja_reference.py:
// ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// json.dumps-based tojson) on the same template and context.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tokenizer/chat_template.h"

namespace {

std::string render(const std::string& tmpl, const std::string& context_json) {
  return lorax::ChatTemplate(tmpl).render(nlohmann::ordered_json::parse(context_json));
}

void expect_error(const std::string& tmpl, const std::string& context_json, const std::string& message) {
  try {
    render(tmpl, context_json);
    ADD_FAILURE() << "expected TemplateError for " << tmpl;
  } catch (const lorax::TemplateError& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

// Malformed templates are rejected when constructed, with a one-line message naming the line.
std::string parse_error(const std::string& tmpl) {
  try {
    lorax::ChatTemplate t(tmpl);
  } catch (const lorax::TemplateError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ChatTemplateLoops, LoopVariables) {
  EXPECT_EQ(render(R"J({% for x in items %}{{ loop.index }}/{{ loop.length }}:{{ x }}{% if not loop.last %}, {% endif %}{% endfor %})J",
                   R"J({"items": ["a", "b", "c"]})J"),
            R"J(1/3:a, 2/3:b, 3/3:c)J");
}

TEST(ChatTemplateLoops, LoopFirstLastRevindex) {
  EXPECT_EQ(render(R"J({% for x in items %}[{{ loop.first }} {{ loop.last }} {{ loop.revindex }} {{ loop.index0 }}]{% endfor %})J",
                   R"J({"items": [1, 2]})J"),
            R"J([True False 2 0][False True 1 1])J");
}

TEST(ChatTemplateLoops, LoopElseAndFilter) {
  EXPECT_EQ(render(R"J({% for x in items if x > 5 %}{{ x }}{% else %}none{% endfor %};{% for x in items if x > 1 %}{{ x }}{% endfor %})J",
                   R"J({"items": [1, 2, 3]})J"),
            R"J(none;23)J");
}

TEST(ChatTemplateLoops, BreakContinue) {
  EXPECT_EQ(render(R"J({% for i in range(8) %}{% if i is odd %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %})J",
                   R"J({})J"),
            R"J(024)J");
}

TEST(ChatTemplateLoops, TupleUnpackItems) {
  EXPECT_EQ(render(R"J({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %})J",
                   R"J({"d": {"z": 1, "a": [1, 2]}})J"),
            R"J(z=1;a=[1, 2];)J");
}

TEST(ChatTemplateLoops, ReversedMessages) {
  EXPECT_EQ(render(R"J({% for m in messages[::-1] %}{{ (messages|length - 1) - loop.index0 }}{{ m.role }} {% endfor %})J",
                   R"J({"messages": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}]})J"),
            R"J(2assistant 1user 0system )J");
}

TEST(ChatTemplateLoops, PrevNextItem) {
  EXPECT_EQ(render(R"J({% for x in [1, 2, 3] %}({{ loop.previtem }},{{ loop.nextitem }}){% endfor %})J",
                   R"J({})J"),
            R"J((,2)(1,3)(2,))J");
}

TEST(ChatTemplateWhitespace, TrimAndLstripBlocks) {
  EXPECT_EQ(render(R"J(<start>
  {% for x in [1, 2] %}
    item {{ x }}
  {% endfor %}
<end>
)J",
                   R"J({})J"),
            R"J(<start>
    item 1
    item 2
<end>)J");
}

TEST(ChatTemplateWhitespace, MinusModifiers) {
  EXPECT_EQ(render(R"J(a 
 {%- if true -%} 
 b 
 {%- endif -%} 
 c {{- ' d ' -}} e)J",
                   R"J({})J"),
            R"J(abc d e)J");
}

TEST(ChatTemplateWhitespace, PlusKeepsIndent) {
  EXPECT_EQ(render(R"J(x
  {%+ if true %}y{% endif %}
  {# comment #}
z)J",
                   R"J({})J"),
            R"J(x
  yz)J");
}

TEST(ChatTemplateWhitespace, RawBlock) {
  EXPECT_EQ(render(R"J({% raw %}{{ literal }} {% if %}{% endraw %})J",
                   R"J({})J"),
            R"J({{ literal }} {% if %})J");
}

TEST(ChatTemplateFilters, TextFilters) {
  EXPECT_EQ(render(R"J({{ s|trim }}|{{ s|upper }}|{{ s|lower|title }}|{{ s|trim|capitalize }}|{{ s|length }}|{{ s|replace('o', '0') }})J",
                   R"J({"s": "  hello WORLD  "})J"),
            R"J(hello WORLD|  HELLO WORLD  |  Hello World  |Hello world|15|  hell0 WORLD  )J");
}

TEST(ChatTemplateFilters, ListFilters) {
  EXPECT_EQ(render(R"J({{ l|first }} {{ l|last }} {{ l|join('-') }} {{ l|sort|list }} {{ l|unique|list }} {{ l|sum }} {{ l|length }})J",
                   R"J({"l": [3, 1, 3, 2]})J"),
            R"J(3 2 3-1-3-2 [1, 2, 3, 3] [3, 1, 2] 9 4)J");
}

TEST(ChatTemplateFilters, MapSelectAttr) {
  EXPECT_EQ(render(R"J({{ ms|map(attribute='role')|join(',') }} {{ ms|selectattr('role', 'equalto', 'user')|list|length }} {{ ms|rejectattr('role', 'equalto', 'user')|map(attribute='content')|first }})J",
                   R"J({"ms": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]})J"),
            R"J(user,assistant 1 a)J");
}

TEST(ChatTemplateFilters, DefaultAndConversions) {
  EXPECT_EQ(render(R"J({{ missing|default('dflt') }} {{ ''|default('e', true) }} {{ '12'|int + 1 }} {{ 'x'|int }} {{ 2|float }} {{ 7|string ~ '!' }})J",
                   R"J({})J"),
            R"J(dflt e 13 0 2.0 7!)J");
}

TEST(ChatTemplateFilters, ToJson) {
  EXPECT_EQ(render(R"J({{ v|tojson }}|{{ v|tojson(indent=2) }})J",
                   R"J({"v": {"name": "f", "desc": "ünï \"q\"\n", "args": [1, 2.5, null, true]}})J"),
            R"J({"name": "f", "desc": "ünï \"q\"\n", "args": [1, 2.5, null, true]}|{
  "name": "f",
  "desc": "ünï \"q\"\n",
  "args": [
    1,
    2.5,
    null,
    true
  ]
})J");
}

TEST(ChatTemplateFilters, IndentAndDictsort) {
  EXPECT_EQ(render(R"J({{ t|indent(2) }}|{% for k, v in d|dictsort %}{{ k }}{{ v }}{% endfor %})J",
                   R"J({"t": "a\nb\n\nc", "d": {"b": 1, "a": 2}})J"),
            R"J(a
  b

  c|a2b1)J");
}

TEST(ChatTemplatePrinting, PythonRepr) {
  EXPECT_EQ(render(R"J({{ 1.0 }} {{ 3 / 2 }} {{ True }} {{ None }} {{ [1, 'two', None, 2.0] }} {{ {'k': "it's"} }} {{ (1,) }} {{ 1e16 }} {{ 0.00001 }})J",
                   R"J({})J"),
            R"J(1.0 1.5 True None [1, 'two', None, 2.0] {'k': "it's"} (1,) 1e+16 1e-05)J");
}

TEST(ChatTemplatePrinting, UndefinedPrintsEmpty) {
  EXPECT_EQ(render(R"J([{{ nothing }}][{{ obj.missing }}][{{ obj['missing'] }}])J",
                   R"J({"obj": {"a": 1}})J"),
            R"J([][][])J");
}

TEST(ChatTemplateExpressions, Operators) {
  EXPECT_EQ(render(R"J({{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 8 }} {{ 'a' ~ 1 }} {{ 'x' + 'y' }} {{ 1 < 2 <= 2 }} {{ 'ell' in 'hello' }} {{ 3 not in [1, 2] }} {{ 'y' if false else 'n' }})J",
                   R"J({})J"),
            R"J(3 -4 2 256 a1 xy True True True n)J");
}

TEST(ChatTemplateExpressions, StringMethods) {
  EXPECT_EQ(render(R"J({{ s.strip() }}|{{ s.split('</think>')[-1].lstrip('\n') }}|{{ s.startswith(' <') }}|{{ s.endswith('x') }}|{{ s.upper() }})J",
                   R"J({"s": " <think>r</think>\n\nanswer "})J"),
            R"J(<think>r</think>

answer|answer |True|False| <THINK>R</THINK>

ANSWER )J");
}

TEST(ChatTemplateExpressions, TestsIsDefinedNoneString) {
  EXPECT_EQ(render(R"J({{ x is defined }} {{ y is defined }} {{ n is none }} {{ n is not none }} {{ 's' is string }} {{ [] is iterable }} {{ {} is mapping }} {{ 4 is even }} {{ false is false }})J",
                   R"J({"x": 0, "n": null})J"),
            R"J(True False True False True True True True True)J");
}

TEST(ChatTemplateMacros, DefaultArguments) {
  EXPECT_EQ(render(R"J({% macro tag(name, cls='c', close=true) %}<{{ name }} class={{ cls }}>{% if close %}</{{ name }}>{% endif %}{% endmacro %}{{ tag('a') }}{{ tag('b', 'x') }}{{ tag('i', close=false) }})J",
                   R"J({})J"),
            R"J(<a class=c></a><b class=x></b><i class=c>)J");
}

TEST(ChatTemplateMacros, CallBlockCaller) {
  EXPECT_EQ(render(R"J({% macro box(title) %}[{{ title }}: {{ caller() }}]{% endmacro %}{% call box('T') %}body {{ 2 * 3 }}{% endcall %})J",
                   R"J({})J"),
            R"J([T: body 6])J");
}

TEST(ChatTemplateMacros, FilterAndSetBlocks) {
  EXPECT_EQ(render(R"J({% filter upper %}shout {{ w }}{% endfilter %} {% set cap %}captured {{ w }}{% endset %}{{ cap|length }})J",
                   R"J({"w": "it"})J"),
            R"J(SHOUT IT 11)J");
}

TEST(ChatTemplateNamespace, NamespaceSurvivesLoop) {
  EXPECT_EQ(render(R"J({% set ns = namespace(n=0, last='') %}{% set plain = 0 %}{% for m in ms %}{% set ns.n = ns.n + 1 %}{% set ns.last = m %}{% set plain = plain + 1 %}{% endfor %}{{ ns.n }} {{ ns.last }} {{ plain }})J",
                   R"J({"ms": ["a", "b", "c"]})J"),
            R"J(3 c 0)J");
}

TEST(ChatTemplateNamespace, QwenLastQueryIndex) {
  EXPECT_EQ(render(R"J({% set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}{% for message in messages[::-1] %}{% set index = (messages|length - 1) - loop.index0 %}{% if ns.multi_step_tool and message.role == 'user' and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}{% set ns.multi_step_tool = false %}{% set ns.last_query_index = index %}{% endif %}{% endfor %}{{ ns.last_query_index }})J",
                   R"J({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "<tool_response>r</tool_response>"}]})J"),
            R"J(0)J");
}

// Found by tests/fuzz (chat_template): a namespace that references itself leaked
// (shared_ptr cycle; ASan builds report it), and a long chain of namespaces
// overflowed the stack when freed, once per link.
TEST(ChatTemplateNamespace, CyclesAndLongChainsAreFreed) {
  EXPECT_EQ(render(R"J({% set ns = namespace(a=1) %}{% set ns.self = ns %}{% set ns.l = [ns, 2] %}{% for x in [ns] %}{{ loop.changed(ns) }}{% endfor %}{{ ns.a }})J",
                   "{}"),
            "True1");
  // 100,000 links; the sanitizer build (tests/fuzz) caps loops lower, so it uses half its cap.
#ifdef LORAX_JINJA_MAX_ITERATIONS
  const std::string links = std::to_string(LORAX_JINJA_MAX_ITERATIONS / 2);
#else
  const std::string links = "100000";
#endif
  const std::string chain = R"J({% set ns = namespace(h=none) %}{% for i in range()J" + links +
                            R"J() %}{% set ns.h = namespace(h=ns.h) %}{% endfor %})J";
  EXPECT_EQ(render(chain + "kept", "{}"), "kept");                               // freed after the render
  EXPECT_EQ(render(chain + R"J({% set ns.h = none %}dropped)J", "{}"), "dropped");  // freed during it
}

// Found by tests/fuzz (chat_template): numbers out of range escaped as
// std::out_of_range (std::stod/stoll/stoul) or were cast with undefined behaviour.
TEST(ChatTemplateErrors, NumbersOutOfRange) {
  EXPECT_EQ(render("{{ 1e312 }} {{ -1e312 }} {{ 1e-400 }} {{ '1e999'|float }} {{ 1e312 // 1e-10 }}", "{}"),
            "inf -inf 0.0 inf nan");
  EXPECT_EQ(render("{{ [{'a': 1}]|map(attribute='99999999999999999999')|list }}", "{}"), "[Undefined]");
  EXPECT_EQ(render("{{ '%c' % 65 }}{{ '%5.1s|' % 'abc' }}{{ '%d' % 2.7 }}", "{}"), "A    a|2");
  for (const char* t : {"{{ x.99999999999999999999 }}", "{{ '{99999999999999999999}'.format(1) }}",
                        "{{ '%99999999999d' % 1 }}", "{{ '%.99999999999999999999s' % 'a' }}", "{{ '%c' % 1e300 }}",
                        "{{ '%c' % 99999999 }}", "{{ '%d' % 1e300 }}"})
    EXPECT_THROW(render(t, "{}"), lorax::TemplateError) << t;
}

// Found probing after the chat_template fuzz target's first findings: nothing
// bounded what a render builds, so a template could take all memory or, with a
// string grown by concatenation in a loop, run for hours.
TEST(ChatTemplateErrors, RenderBudget) {
  for (const char* t : {R"J({{ ("x"*1000000)*1000000 }})J", R"J({{ (range(1000)|list)*1000000 }})J",
                        R"J({% set s = "x"*1000000 %}{% for i in range(100) %}{{ s }}{% endfor %})J",
                        R"J({% set s = "x"*1000000 %}{% set ns = namespace(a="") %}{% for i in range(3000) %}{% set ns.a = ns.a ~ s %}{% endfor %})J",
                        R"J({{ (("a,"*1000000)*20).split(",")|length }})J", R"J({{ (("a"*1000000)*40)|list|length }})J",
                        R"J({{ 'a\nb'|indent(1000000000) }})J", R"J({{ 'x'|center(1000000000) }})J",
                        R"J({% set l = ["x"*1000000]*40 %}{{ l|join("y"*1000000)|length }})J",
                        R"J({% set l = ["x"*1000000]*40 %}{{ [l, l]|tojson|length }})J",
                        R"J({% set l = ["x"*1000000]*100 %})J",  // a list copies its strings' text
                        R"J({% set ns = namespace(l=["x"*1000000]) %}{% for i in range(30) %}{% set ns.l = ns.l + ns.l %}{% endfor %})J",
                        R"J({{ ('x'*100000)|replace('', 'y'*1000) }})J"}) {
    try {
      render(t, "{}");
      ADD_FAILURE() << "no error for " << t;
    } catch (const lorax::TemplateError& e) {
      EXPECT_NE(std::string(e.what()).find("the template built"), std::string::npos) << t << ": " << e.what();
    }
  }
  // Below the bounds nothing changes; a negative indent width is no indent, as in Python.
  EXPECT_EQ(render(R"J({{ ("x"*1000000)|length }} {{ 'a\nb'|indent(-3) }} {{ ("ab,"*1000).split(",")|length }})J", "{}"),
            "1000000 a\nb 1001");
}

TEST(ChatTemplateGlobals, RaiseExceptionMessage) {
  expect_error(R"J({% if messages|length == 0 %}{{ raise_exception('No messages provided.') }}{% endif %})J", R"J({"messages": []})J", R"J(No messages provided.)J");
}

TEST(ChatTemplateErrors, UnclosedBlock) {
  std::string e = parse_error("line one\n{% for m in messages %}{{ m }}\n");
  EXPECT_NE(e.find("unclosed 'for' block opened at line 2"), std::string::npos) << e;
  e = parse_error("{% if x %}a{% else %}b");
  EXPECT_NE(e.find("unclosed 'if' block"), std::string::npos) << e;
}

TEST(ChatTemplateErrors, UnknownFilterAndTest) {
  EXPECT_EQ(parse_error("\n{{ x | frobnicate }}"), "unknown filter 'frobnicate' at line 2");
  EXPECT_EQ(parse_error("{{ x is frobnicated }}"), "unknown test 'frobnicated' at line 1");
  // jinja2 built-ins that this interpreter does not implement say so.
  EXPECT_EQ(parse_error("{{ x | wordwrap }}"), "unsupported filter 'wordwrap' at line 1");
}

TEST(ChatTemplateErrors, BadSyntax) {
  EXPECT_NE(parse_error("{{ 1 + }}").find("at line 1"), std::string::npos);
  EXPECT_NE(parse_error("{{ 'unterminated }}").find("at line 1"), std::string::npos);
  EXPECT_NE(parse_error("{% if %}{% endif %}").find("at line 1"), std::string::npos);
  EXPECT_NE(parse_error("{{ x ").find("at line 1"), std::string::npos);
  EXPECT_NE(parse_error("{# never closed").find("comment"), std::string::npos);
  EXPECT_NE(parse_error("{{ (1, 2 }}").find("at line 1"), std::string::npos);
  EXPECT_EQ(parse_error("a\n\n{% endfor %}"), "unexpected tag 'endfor' at line 3");
  EXPECT_EQ(parse_error("{% break %}"), "'break' outside of a loop at line 1");
}

TEST(ChatTemplateErrors, UnsupportedConstructs) {
  EXPECT_EQ(parse_error("{% include 'x.j2' %}"), "unsupported tag 'include' at line 1");
  EXPECT_EQ(parse_error("{% frob %}"), "unknown tag 'frob' at line 1");
  EXPECT_NE(parse_error("{% for x in y recursive %}{% endfor %}").find("unsupported recursive"), std::string::npos);
}

TEST(ChatTemplateErrors, RuntimeErrorsNameTheLine) {
  // jinja2 raises UndefinedError / TypeError / SecurityError with these messages; ours add the line.
  expect_error("ok\n{{ missing.attr }}", "{}", "'missing' is undefined at line 2");
  expect_error("{{ 'a' + 1 }}", "{}", "can only concatenate str (not \"int\") to str at line 1");
  expect_error("{% set l = [] %}{{ l.append(1) }}", "{}", "access to attribute 'append' of 'list' object is unsafe. at line 1");
  expect_error("{% for x in none %}{% endfor %}", "{}", "'NoneType' object is not iterable at line 1");
}

TEST(ChatTemplateApi, JsonAndOrderedJsonContexts) {
  lorax::ChatTemplate t("{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{{ d|tojson }}");
  nlohmann::json ctx = {{"bos_token", "<s>"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"d", {{"b", 1}, {"a", 2}}}};
  // nlohmann::json sorts keys; ordered_json keeps the caller's order like a Python dict
  // (expected strings from jinja2 given {'a': 2, 'b': 1} and {'b': 1, 'a': 2}).
  EXPECT_EQ(t.render(ctx), R"(<s>user:hi;{"a": 2, "b": 1})");
  EXPECT_EQ(t.render(nlohmann::ordered_json::parse(R"({"bos_token": "<s>", "messages": [], "d": {"b": 1, "a": 2}})")),
            R"(<s>{"b": 1, "a": 2})");
  EXPECT_THROW(t.render(nlohmann::json::array()), lorax::TemplateError);
}

TEST(ChatTemplateApi, LoadsSharedTokenizerConfig) {
  // The shared tokenizers sit beside the checkout (tests run from the repo root), as in tests/conftest.py.
  const char* env = std::getenv("LORAX_SHARED_DIR");
  std::string dir = std::string(env ? env : "../shared") + "/tokenizers/gemma3";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " not present";
  auto cfg = lorax::load_chat_template_config(dir);
  EXPECT_EQ(cfg.special_tokens["bos_token"], "<bos>");
  lorax::ChatTemplate t(cfg.source);
  auto ctx = lorax::default_chat_context(cfg);
  ctx["messages"] = nlohmann::ordered_json::parse(R"([{"role": "user", "content": " hi "}])");
  ctx["add_generation_prompt"] = true;
  // Expected text rendered by jinja2 with the same context.
  EXPECT_EQ(t.render(ctx), "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplateApi, ConfigVariants) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("lorax_ct_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  };
  // Named templates: "default" unless tools are passed and "tool_use" exists.
  write("tokenizer_config.json", R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "pad_token": null,
    "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(lorax::load_chat_template_config(dir.string()).source, "D");
  EXPECT_EQ(lorax::load_chat_template_config((dir / "tokenizer_config.json").string(), "", true).source, "T");
  EXPECT_EQ(lorax::load_chat_template_config(dir.string(), "tool_use").source, "T");
  EXPECT_THROW(lorax::load_chat_template_config(dir.string(), "nope"), lorax::TemplateError);
  auto cfg = lorax::load_chat_template_config(dir.string());
  EXPECT_EQ(cfg.special_tokens.dump(), R"({"bos_token":"<s>","eos_token":"</s>"})");
  EXPECT_EQ(lorax::default_chat_context(cfg).dump(),
            R"({"messages":[],"tools":null,"documents":null,"add_generation_prompt":false,"bos_token":"<s>","eos_token":"</s>"})");
  // No template in the config: chat_template.jinja, then chat_template.json, else a clear error.
  write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_THROW(lorax::load_chat_template_config(dir.string()), lorax::TemplateError);
  write("chat_template.json", R"({"chat_template": "J"})");
  EXPECT_EQ(lorax::load_chat_template_config(dir.string()).source, "J");
  write("chat_template.jinja", "{{ 'jinja' }}\n");
  EXPECT_EQ(lorax::load_chat_template_config(dir.string()).source, "{{ 'jinja' }}\n");
  write("tokenizer_config.json", "{broken");
  EXPECT_THROW(lorax::load_chat_template_config(dir.string()), lorax::TemplateError);
  EXPECT_THROW(lorax::load_chat_template_config((dir / "missing.json").string()), lorax::TemplateError);
  fs::remove_all(dir);
}
