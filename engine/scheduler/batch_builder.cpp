#include "scheduler/batch_builder.h"

#include <algorithm>
#include <map>

namespace lorax {

BuiltBatch build_batch(std::vector<ScheduledChunk> chunks, int block_size) {
  std::stable_sort(chunks.begin(), chunks.end(), [](const ScheduledChunk& a, const ScheduledChunk& b) {
    return a.seq->req.adapter_id < b.seq->req.adapter_id;
  });
  BuiltBatch out;
  ForwardBatch& batch = out.forward;
  std::map<const AdapterWeights*, int> adapter_index;
  batch.max_blocks = 0;
  for (const ScheduledChunk& c : chunks)
    batch.max_blocks = std::max(batch.max_blocks, static_cast<int32_t>(c.seq->blocks.size()));
  batch.cu_seqlens.push_back(0);
  for (const ScheduledChunk& c : chunks) {
    const Sequence& seq = *c.seq;
    const int start_token = batch.num_tokens();
    for (int i = 0; i < c.count; ++i) {
      const int pos = seq.computed + i;
      batch.input_ids.push_back(seq.tokens[pos]);
      batch.position_ids.push_back(pos);
      batch.slots.push_back(seq.blocks[pos / block_size] * block_size + pos % block_size);
      const bool newest = pos == static_cast<int>(seq.tokens.size()) - 1;
      const bool wants_prompt_logprob = seq.req.prefill_details && pos + 1 < static_cast<int>(seq.prompt_len);
      const bool wants_hidden = seq.req.embed;  // pooling reads every prompt position
      if (newest || wants_prompt_logprob || wants_hidden) {
        batch.lm_head_indices.push_back(batch.num_tokens() - 1);
        out.rows.push_back({c.seq, pos});
      }
    }
    batch.cu_seqlens.push_back(batch.num_tokens());
    batch.seq_lens.push_back(seq.computed + c.count);
    batch.max_s = std::max(batch.max_s, seq.computed + c.count);
    std::vector<int32_t> table = seq.blocks;
    table.resize(batch.max_blocks, 0);
    batch.block_tables.insert(batch.block_tables.end(), table.begin(), table.end());
    int adapter = -1;
    if (seq.adapter) {
      auto [it, inserted] = adapter_index.emplace(seq.adapter.get(), static_cast<int>(out.adapters.adapters.size()));
      if (inserted) out.adapters.adapters.push_back(seq.adapter.get());
      adapter = it->second;
    }
    auto& segs = batch.adapter_segments;
    if (!segs.empty() && segs.back().adapter == adapter && segs.back().end == start_token)
      segs.back().end = batch.num_tokens();
    else
      segs.push_back({start_token, batch.num_tokens(), adapter});
  }
  if (!out.adapters.adapters.empty()) {
    out.adapters.token_segments = batch.adapter_segments;
    out.adapters.finalize(batch.lm_head_indices);
  }
  return out;
}

}  // namespace lorax
