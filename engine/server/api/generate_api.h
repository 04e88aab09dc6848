// The LoRAX /generate request and response shapes (DESIGN.md §4), shared by the
// REST server and `lorax-engine generate --json` so both speak exactly one format.
#pragma once
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scheduler/request.h"

namespace lorax {

// A request the client got wrong: HTTP 422 with error_type "validation".
struct ValidationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// LoRAX `merged_adapters`: the adapters to merge for this request (adapters/adapter_merge.h).
struct MergedAdaptersParams {
  std::vector<std::string> ids;
  std::vector<double> weights;
  std::string merge_strategy = "linear";
  double density = 1.0;
  std::string majority_sign_method = "total";
};

struct GenerateParameters {
  std::optional<std::string> adapter_id;
  std::optional<std::string> adapter_source;
  std::optional<std::string> api_token;
  std::optional<int> max_new_tokens;
  SamplingParams sampling;
  std::vector<std::string> stop;
  std::optional<int> truncate;
  bool return_full_text = false;
  bool details = false;
  bool decoder_input_details = false;
  int best_of = 1;
  int top_n_tokens = 0;  // alternatives per generated token in details.top_tokens
  int return_k_alternatives = 0;  // alternatives per token in its alternative_tokens
  std::optional<MergedAdaptersParams> merged_adapters;
  bool watermark = false;
  bool ignore_eos_token = false;
  // response_format: the output is JSON (LoRAX's {"type": "json_object"}), of
  // `json_schema` when that is not null (else any JSON object).
  bool json_output = false;
  nlohmann::json json_schema;
};

struct GenerateBody {
  std::string inputs;
  GenerateParameters parameters;
};

// At most this many `stop` sequences per request (advertised in /info).
inline constexpr int kMaxStopSequences = 4;

// Throws ValidationError naming the offending field.
GenerateBody parse_generate_body(const nlohmann::json& body);
GenerateParameters parse_generate_parameters(const nlohmann::json& params);

// Server limits a request is checked against (lorax-engine serve flags).
struct RequestLimits {
  int max_input_length = 1024;
  int max_total_tokens = 2048;
  int default_max_new_tokens = 20;
  size_t max_schema_bytes = 64 * 1024;  // a response_format schema's compact JSON text (--max-schema-bytes)
};

class Tokenizer;
// Tokenizes `inputs` (with special tokens), applies `truncate`, checks the
// limits and fills a scheduler request (callbacks are the caller's).
GenerationRequest build_generation_request(const GenerateBody& body, const Tokenizer& tokenizer,
                                           const RequestLimits& limits);
// The same for a prompt tokenized elsewhere (chat: the template placed the special tokens).
GenerationRequest build_generation_request(std::vector<int32_t> prompt_ids, const GenerateParameters& params,
                                           const RequestLimits& limits);

// LoRAX's `parameters.response_format` ({"type": "json_object", "schema": ...})
// into `params`; throws ValidationError.
void parse_response_format(const nlohmann::json& rf, GenerateParameters& params);

// The /generate response body: the best of the request's `best_of` sequences
// (the highest mean token log-prob, as TGI picks it), the others in
// details.best_of_sequences.
nlohmann::json generate_response(const std::vector<FinishInfo>& infos, const GenerateParameters& params,
                                 const std::string& prompt);
// A token as LoRAX lists it; with `alternatives` > 0 also its alternative_tokens
// (return_k_alternatives: the k likeliest tokens of its distribution).
nlohmann::json token_json(const GeneratedToken& tok, int alternatives = 0);
nlohmann::json top_tokens_json(const GeneratedToken& tok, int n);  // its n likeliest alternatives (top_n_tokens)
// Mean log-prob of the generated tokens (-inf for none); the index of the highest.
double mean_logprob(const FinishInfo& info);
size_t best_sequence(const std::vector<FinishInfo>& infos);

}  // namespace lorax
