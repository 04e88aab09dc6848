// Streaming detokenization with the prefix/read offset scheme of TGI and vLLM:
// decode(ids[prefix:]) minus decode(ids[prefix:read]) is the new text, held back
// while it ends in U+FFFD (an incomplete UTF-8 sequence).
#include "tokenizer/tokenizer.h"

namespace lorax {
namespace {
// How many prompt ids give the first generated token its context (vLLM uses 5).
constexpr size_t kPromptContext = 5;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
// Text held back for an incomplete sequence is forced out past this many pending ids.
constexpr size_t kMaxPending = 8;
constexpr size_t kLookahead = 4;

// "<0xAB>": a ByteFallback piece. A run of them decodes as one group that becomes
// U+FFFD per byte when invalid as a whole, so text before the run ends is not final.
bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>';
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(std::shared_ptr<const Tokenizer> tok, bool skip_special_tokens,
                                               std::span<const int32_t> prompt_ids)
    : tok_(std::move(tok)), skip_special_(skip_special_tokens) {
  size_t start = prompt_ids.size() - std::min(prompt_ids.size(), kPromptContext);
  // Never start inside a run of byte-fallback pieces: the run decodes as one group,
  // and a cut one would turn into U+FFFD.
  while (start > 0 && (is_byte_token(tok_->id_to_token(prompt_ids[start - 1])) ||
                       (skip_special_ && tok_->is_special(prompt_ids[start - 1]))))
    --start;
  ids_.assign(prompt_ids.begin() + static_cast<ptrdiff_t>(start), prompt_ids.end());
  for (int32_t id : ids_)
    if (!(skip_special_ && tok_->is_special(id))) last_visible_is_byte_ = is_byte_token(tok_->id_to_token(id));
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
}

std::string IncrementalDetokenizer::push(int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= tok_->vocab_size())
    throw TokenizerError("token id " + std::to_string(id) + " is out of range");
  ids_.push_back(id);
  // Skipped special tokens are invisible to the decoder, so a byte run can continue across them.
  if (!(skip_special_ && tok_->is_special(id))) last_visible_is_byte_ = is_byte_token(tok_->id_to_token(id));
  if (last_visible_is_byte_) return "";
  std::span<const int32_t> all(ids_);
  // decode(ids[prefix:read]) only changes when the window moves, so it is kept between pushes.
  if (!prefix_text_)
    prefix_text_ = tok_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  const std::string& prefix_text = *prefix_text_;
  std::string new_text = tok_->decode(all.subspan(prefix_offset_), skip_special_);
  if (new_text.compare(0, prefix_text.size(), prefix_text) != 0) return "";
  if (new_text.size() > prefix_text.size() && !ends_with(new_text, kReplacement))
    return advance(new_text.substr(prefix_text.size()), ids_.size());
  // Invalid bytes keep the text ending in U+FFFD. So that the window stays small, text
  // followed by at least kLookahead more ids is final once it agrees with the longer
  // decode (a UTF-8 sequence spans at most 4 bytes, and every id is at least one byte).
  if (ids_.size() - read_offset_ <= kMaxPending) return "";
  size_t cut = ids_.size() - kLookahead;
  while (cut > read_offset_ && is_byte_token(tok_->id_to_token(ids_[cut - 1]))) --cut;
  if (cut <= read_offset_) return "";
  std::string mid = tok_->decode(all.subspan(prefix_offset_, cut - prefix_offset_), skip_special_);
  if (mid.size() <= prefix_text.size() || new_text.compare(0, mid.size(), mid) != 0) return "";
  return advance(mid.substr(prefix_text.size()), cut);
}

std::string IncrementalDetokenizer::advance(std::string out, size_t new_read) {
  // Drop ids before the window so memory stays bounded on long generations.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(read_offset_));
  prefix_offset_ = 0;
  read_offset_ = new_read - read_offset_;
  prefix_text_.reset();
  return out;
}

std::string IncrementalDetokenizer::finish() {
  std::span<const int32_t> all(ids_);
  std::string prefix_text = tok_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  std::string new_text = tok_->decode(all.subspan(prefix_offset_), skip_special_);
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(read_offset_));
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
  prefix_text_.reset();
  if (new_text.size() > prefix_text.size() && new_text.compare(0, prefix_text.size(), prefix_text) == 0)
    return new_text.substr(prefix_text.size());
  return "";
}

}  // namespace lorax
