// PCRE2 (UTF, Unicode properties, JIT) wrapper that accepts the Oniguruma-style
// patterns found in tokenizer.json files. The few escapes whose meaning differs
// between the two engines (\s, \h, \w, \uHHHH) are rewritten before compiling.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lorax::tok {

class Regex {
 public:
  explicit Regex(const std::string& onig_pattern);  // throws std::runtime_error
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches left to right, like Oniguruma's find_iter: after an
  // empty match the search resumes one character later. `s` must be valid UTF-8.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
};

// Exposed for unit tests.
std::string onig_to_pcre2(const std::string& pattern);

}  // namespace lorax::tok
