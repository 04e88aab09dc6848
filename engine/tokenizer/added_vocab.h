// Added tokens of tokenizer.json and how they are cut out of the input before the
// model sees it: leftmost-longest matching (the library uses aho-corasick), with
// single_word / lstrip / rstrip, non-normalized tokens on the raw text and
// normalized ones on the normalized text.
// Hand-written: a byte trie gives the leftmost-longest match directly and no packaged
// Aho-Corasick library is installed; added-token sets are small.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lorax::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = true, single_word = false;
};

// Byte trie over the patterns of one matching set.
class TokenTrie {
 public:
  void add(std::string_view pattern, int32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest pattern starting at s[pos]: its token index and length, or -1.
  int32_t longest_at(std::string_view s, size_t pos, size_t* len) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_byte_{};
};

struct Segment {
  size_t b, e;
  int32_t token;  // index into the added tokens, -1 for plain text
};

// The library's find_matches: splits `s` into plain segments and added-token matches.
void find_added(std::string_view s, const TokenTrie& trie, const std::vector<AddedToken>& tokens,
                std::vector<Segment>& out);

}  // namespace lorax::tok
