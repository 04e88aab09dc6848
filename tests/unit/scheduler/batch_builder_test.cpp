// build_batch alone: sequences and token counts in, the flattened forward out.
#include <gtest/gtest.h>

#include "scheduler/batch_builder.h"

namespace lorax {
namespace {

std::unique_ptr<Sequence> seq(std::vector<int32_t> tokens, int computed, std::vector<int32_t> blocks,
                              std::string adapter = "", std::shared_ptr<AdapterWeights> weights = nullptr) {
  auto s = std::make_unique<Sequence>();
  s->tokens = std::move(tokens);
  s->prompt_len = s->tokens.size();
  s->computed = computed;
  s->blocks = std::move(blocks);
  s->req.adapter_id = std::move(adapter);
  s->adapter = std::move(weights);
  return s;
}

TEST(BatchBuilder, FlattensChunksAndGroupsThemByAdapter) {
  auto a = std::make_shared<AdapterWeights>();
  auto b = std::make_shared<AdapterWeights>();
  // A decode (one new token at position 5), a prompt chunk (tokens 0-2 of 6) and two more decodes.
  auto d1 = seq({10, 11, 12, 13, 14, 15}, 5, {7, 3}, "b", b);
  auto chunk = seq({20, 21, 22, 23, 24, 25}, 0, {4});
  auto d2 = seq({30, 31, 32}, 2, {9}, "a", a);
  auto d3 = seq({40, 41, 42, 43}, 3, {2}, "b", b);
  d1->prompt_len = 5;
  d2->prompt_len = 2;
  d3->prompt_len = 3;
  const int bs = 4;
  BuiltBatch out = build_batch({{d1.get(), 1}, {chunk.get(), 3}, {d2.get(), 1}, {d3.get(), 1}}, bs);
  const ForwardBatch& f = out.forward;
  // Stable grouping by adapter id: base ("") first, then a, then b in their order.
  EXPECT_EQ(f.input_ids, (std::vector<int32_t>{20, 21, 22, 32, 15, 43}));
  EXPECT_EQ(f.position_ids, (std::vector<int32_t>{0, 1, 2, 2, 5, 3}));
  EXPECT_EQ(f.cu_seqlens, (std::vector<int32_t>{0, 3, 4, 5, 6}));
  EXPECT_EQ(f.seq_lens, (std::vector<int32_t>{3, 3, 6, 4}));
  EXPECT_EQ(f.max_s, 6);
  // Slots through each block table: block * 4 + offset.
  EXPECT_EQ(f.slots, (std::vector<int32_t>{16, 17, 18, 38, 3 * 4 + 1, 2 * 4 + 3}));
  EXPECT_EQ(f.max_blocks, 2);
  EXPECT_EQ(f.block_tables, (std::vector<int32_t>{4, 0, 9, 0, 7, 3, 2, 0}));
  // The chunk's last token is not its newest (more prompt follows): no logits row for it.
  EXPECT_EQ(f.lm_head_indices, (std::vector<int32_t>{3, 4, 5}));
  ASSERT_EQ(out.rows.size(), 3u);
  EXPECT_EQ(out.rows[0].seq, d2.get());
  EXPECT_EQ(out.rows[1].position, 5);
  // Segments: base tokens, then one per adapter (b's two decodes merged).
  ASSERT_EQ(f.adapter_segments.size(), 3u);
  EXPECT_EQ(f.adapter_segments[0].adapter, -1);
  EXPECT_EQ(f.adapter_segments[1].start, 3);
  EXPECT_EQ(f.adapter_segments[2].start, 4);
  EXPECT_EQ(f.adapter_segments[2].end, 6);
  ASSERT_EQ(out.adapters.adapters.size(), 2u);
  EXPECT_EQ(out.adapters.adapters[f.adapter_segments[2].adapter], b.get());
  ASSERT_EQ(out.adapters.lm_head_segments.size(), 2u);  // rows 0 (a) and 1-2 (b)
  EXPECT_EQ(out.adapters.lm_head_segments[1].end, 3);
  EXPECT_NE(out.adapter_batch(), nullptr);
}

TEST(BatchBuilder, PromptLogprobsAskForEveryPromptRow) {
  auto s = seq({1, 2, 3, 4}, 0, {0});
  s->req.prefill_details = true;
  BuiltBatch out = build_batch({{s.get(), 4}}, 16);
  // Rows for positions 0-2 (their next token's log-prob) and 3 (the newest token).
  EXPECT_EQ(out.forward.lm_head_indices, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(out.adapter_batch(), nullptr);
}

}  // namespace
}  // namespace lorax
