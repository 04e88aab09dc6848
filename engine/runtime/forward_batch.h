// The input of one forward pass, identical for every backend (DESIGN.md §3).
// Tokens of all sequences are flattened: sequence b owns tokens
// [cu_seqlens[b], cu_seqlens[b+1]); a decode contributes one token, a (chunk of a)
// prefill several. Every token's K/V is written to `slots[t]` before attention, so
// prefill, chunked prefill and decode all attend through the block tables alike.
#pragma once
#include <cstdint>
#include <vector>

namespace lorax {

// A contiguous token range that uses one adapter (index into the batch's adapter
// list; -1 = base model only).
struct AdapterSegment {
  int32_t start = 0;
  int32_t end = 0;
  int32_t adapter = -1;
};

struct ForwardBatch {
  std::vector<int32_t> input_ids;     // [T]
  std::vector<int32_t> position_ids;  // [T]
  std::vector<int32_t> cu_seqlens;    // [B+1] token boundaries per sequence
  std::vector<int32_t> seq_lens;      // [B] context length after this step
  std::vector<int32_t> block_tables;  // [B * max_blocks], row-major
  int32_t max_blocks = 0;
  std::vector<int32_t> slots;         // [T] KV slot of each token
  int32_t max_s = 0;                  // max over seq_lens
  std::vector<int32_t> lm_head_indices;  // token rows that need logits
  std::vector<AdapterSegment> adapter_segments;

  int32_t num_tokens() const { return static_cast<int32_t>(input_ids.size()); }
  int32_t num_seqs() const { return cu_seqlens.empty() ? 0 : static_cast<int32_t>(cu_seqlens.size()) - 1; }
};

}  // namespace lorax
