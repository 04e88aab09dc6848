// UTF-8 helpers giving Python str semantics (code-point indexing, str.isspace)
// over the std::string values the interpreter stores.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace lorax::jinja::utf8 {

std::u32string decode(std::string_view s);  // invalid bytes map to U+FFFD
std::string encode(const std::u32string& s);
void append(std::string& out, char32_t cp);
size_t length(std::string_view s);  // number of code points
bool is_space(char32_t c);          // Python str.isspace()
bool is_alpha_ascii(char32_t c);
char32_t to_upper(char32_t c);      // simple one-to-one mappings (see utf8.cpp for coverage)
char32_t to_lower(char32_t c);
std::u32string upper_full(char32_t c);  // Python's str.upper() per character ('ß' -> "SS")
std::u32string lower_full(char32_t c);
bool is_cased_letter(char32_t c);

// Python str.strip()/lstrip()/rstrip() with chars=None (whitespace) or a set.
std::string strip(std::string_view s, bool left, bool right, const std::u32string* chars);

}  // namespace lorax::jinja::utf8
