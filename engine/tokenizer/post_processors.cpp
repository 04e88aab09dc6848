// Post-processors: the special tokens added around one encoded sequence.
#include <stdexcept>

#include "tokenizer/bpe.h"
#include "tokenizer/components.h"

namespace lorax::tok {
namespace {

// TemplateProcessing, RobertaProcessing and BertProcessing all reduce to
// "these ids, then the sequence, then those ids" for a single sequence.
class Template : public PostProcessor {
 public:
  Template(std::vector<int32_t> before, std::vector<int32_t> after, bool has_seq)
      : before_(std::move(before)), after_(std::move(after)), has_seq_(has_seq) {}
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out(before_);
    if (has_seq_) out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after_.begin(), after_.end());
    ids = std::move(out);
  }

 private:
  std::vector<int32_t> before_, after_;
  bool has_seq_;
};

class Sequence : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (auto& p : items_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

std::unique_ptr<PostProcessor> make_template(const json& j) {
  const json& single = j.at("single");
  std::vector<int32_t> before, after;
  bool seen_seq = false;
  for (auto& item : single) {
    if (item.contains("Sequence")) {
      if (item["Sequence"].at("id").get<std::string>() != "A")
        throw std::runtime_error("TemplateProcessing single template refers to sequence B");
      seen_seq = true;
    } else if (item.contains("SpecialToken")) {
      std::string name = item["SpecialToken"].at("id").get<std::string>();
      const json& specials = j.at("special_tokens");
      if (!specials.contains(name))
        throw std::runtime_error("TemplateProcessing names special token '" + name + "' missing from special_tokens");
      auto& dst = seen_seq ? after : before;
      for (auto& id : specials[name].at("ids"))
        dst.push_back(static_cast<int32_t>(json_count(id, "TemplateProcessing id of '" + name + "'", kMaxTokenId)));
    } else {
      throw std::runtime_error("bad TemplateProcessing item");
    }
  }
  return std::make_unique<Template>(std::move(before), std::move(after), seen_seq);
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return nullptr;  // only trims offsets, ids are untouched
  if (type == "TemplateProcessing") return make_template(j);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    // {"sep": ["</s>", 2], "cls": ["<s>", 0]}
    const auto cls = static_cast<int32_t>(json_count(j.at("cls").at(1), type + " cls id", kMaxTokenId));
    const auto sep = static_cast<int32_t>(json_count(j.at("sep").at(1), type + " sep id", kMaxTokenId));
    return std::make_unique<Template>(std::vector<int32_t>{cls}, std::vector<int32_t>{sep}, true);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (auto& p : j.at("processors"))
      if (auto x = make_post_processor(p)) items.push_back(std::move(x));
    return std::make_unique<Sequence>(std::move(items));
  }
  throw std::runtime_error("unsupported post_processor type '" + type + "'");
}

}  // namespace lorax::tok
