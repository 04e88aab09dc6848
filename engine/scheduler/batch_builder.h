// The flattened forward batch of one step, built from what the scheduler chose:
// a pure function of the sequences and their token counts (DESIGN.md §3), so it
// is tested without a model.
#pragma once
#include <vector>

#include "adapters/adapter_batch.h"
#include "runtime/forward_batch.h"
#include "scheduler/sequence.h"

namespace lorax {

// `count` tokens of `seq`, from seq->computed on: a decode (1), a prompt or a chunk of it.
struct ScheduledChunk {
  Sequence* seq = nullptr;
  int count = 0;
};

// A logits row of the forward: the token at `position` of `seq`.
struct BatchRow {
  Sequence* seq = nullptr;
  int position = 0;
};

struct BuiltBatch {
  ForwardBatch forward;
  AdapterBatch adapters;  // empty when no chunk uses an adapter
  std::vector<BatchRow> rows;
  const AdapterBatch* adapter_batch() const { return adapters.adapters.empty() ? nullptr : &adapters; }
};

// Chunks are grouped by adapter (stable within an adapter), so each adapter is one
// contiguous token segment. A chunk asks for logits at its last token when that
// is the sequence's newest token, and for every prompt position whose next token
// needs a log-prob (decoder_input_details).
BuiltBatch build_batch(std::vector<ScheduledChunk> chunks, int block_size);

}  // namespace lorax
