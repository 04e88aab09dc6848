// UTF-8 and Unicode-property helpers shared by the tokenizer pieces. Character
// classes follow Rust's `char` methods (is_whitespace, is_numeric, ...) because
// the Hugging Face `tokenizers` library is written in Rust and we match it.
// Hand-written: only the thin UTF-8 step/encode code; properties come from utf8proc.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace lorax::tok {

// Decodes the code point at s[i] (s must be valid UTF-8) and returns its byte length.
inline int utf8_len_from_lead(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
char32_t utf8_decode(std::string_view s, size_t i, int* len);
void utf8_append(std::string& out, char32_t cp);

// Rust String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);
bool utf8_valid(std::string_view bytes);

bool is_whitespace(char32_t c);   // Unicode White_Space (Rust char::is_whitespace)
bool is_numeric(char32_t c);      // Nd | Nl | No (Rust char::is_numeric)
bool is_punctuation(char32_t c);  // ASCII punctuation or Unicode P* (HF's is_punc)
bool is_word_char(char32_t c);    // regex-crate \w: letters, marks, Nd, Pc, join controls
bool is_combining_mark(char32_t c);  // Mn | Mc | Me (what StripAccents removes)

// Rust char::to_lowercase applied to every character.
std::string to_lower(std::string_view s);

}  // namespace lorax::tok
