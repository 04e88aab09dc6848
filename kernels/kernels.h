// Launch wrappers of the CUDA kernels. Host code (engine/runtime/cuda) calls
// only these; they take raw device pointers, a storage dtype and a stream.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace lorax::kernels {

enum class Dt { F32 = 0, F16 = 1, BF16 = 2 };

// out[t] = table[ids[t]] * mult (+ pos_table[pos[t]])
void embed(Dt dt, const void* table, const void* pos_table, const int32_t* ids, const int32_t* pos, float mult,
           int64_t T, int64_t H, void* out, cudaStream_t s);
// y = norm(x) * w (+ b); kind 0 LayerNorm, 1 RMSNorm; one_plus uses (1 + w).
// When `residual` is given it is added into x first (x += residual), fusing the residual add.
void norm(Dt dt, void* x, const void* residual, const void* w, const void* b, int kind, float eps, bool one_plus,
          int64_t rows, int64_t H, void* y, cudaStream_t s);
void rope(Dt dt, void* qkv, const int32_t* pos, const float* inv_freq, int64_t T, int64_t width, int heads,
          int head_dim, int rotary_dim, cudaStream_t s);
// An FP8 (e4m3) KV cache: a slot holds e4m3(x * inv_scale) (round to nearest
// even, saturating at +-448, as runtime/fp8_e4m3.h does on the CPU) and reads
// back as code * scale.
struct KvQuant {
  bool fp8 = false;
  float k_scale = 1.0f, v_scale = 1.0f;
};
// RoPE on q and k (when inv_freq is given), then K/V of each token into its slot.
void rope_kv_write(Dt dt, void* qkv, const int32_t* pos, const float* inv_freq, const int32_t* slots, int64_t T,
                   int64_t width, int q_heads, int kv_heads, int head_dim, int rotary_dim, void* k_cache,
                   void* v_cache, const KvQuant& quant, cudaStream_t s);

struct AttentionArgs {
  const void* qkv;
  const void* k_cache;
  const void* v_cache;
  void* out;                     // [T, Hq, D]
  const int32_t* positions;      // [T]
  const int32_t* seq_of_token;   // [T]
  const int32_t* block_tables;   // [B, max_blocks]
  int64_t T;
  int64_t width;                 // qkv row width
  int max_blocks;
  int block_size;
  int q_heads, kv_heads, head_dim;
  float scale, softcap;
  int window;
  int max_context;               // upper bound of any token's context length
  float* workspace;              // split-context partials
  int64_t workspace_floats;
  const int32_t* token_index;    // when set: only these num_indexed tokens (the rest go to prefill_attention)
  int64_t num_indexed;
  bool no_tensor_cores;          // the CUDA-core decode kernel even where tensor cores apply (A/B runs)
  KvQuant quant;                 // fp8: every attention kernel reads e4m3 codes
};
// Paged attention for any mix of prefill and decode tokens (context split for long sequences).
void paged_attention(Dt dt, const AttentionArgs& a, cudaStream_t s);
// Tensor-core attention for runs of consecutive tokens of one sequence: tiles[2 i] is the
// first token of tile i, tiles[2 i + 1] its length (<= kPrefillTileRows, one sequence).
// Returns false (nothing launched) for fp32 or an unsupported head dim.
constexpr int kPrefillTileRows = 64;
bool prefill_attention(Dt dt, const AttentionArgs& a, const int32_t* tiles, int num_tiles, cudaStream_t s);
// Workspace floats paged_attention needs for these sizes.
int64_t paged_attention_workspace(int64_t T, int q_heads, int kv_heads, int head_dim, int max_context);

// y[0, :N] = x[0] W^T (+ bias) for a single row (batch-1 decode); W is [N, K].
// Returns false (nothing launched) when the shape does not suit it.
bool gemv(Dt dt, const void* x, const void* w, const void* bias, void* y, int rows, int K, int N, int64_t ldy,
          cudaStream_t s);

// act: 0 gelu, 1 gelu_tanh, 2 silu, 3 relu
void activation(Dt dt, void* x, int64_t n, int act, cudaStream_t s);
void gated_activation(Dt dt, const void* gate_up, int64_t rows, int64_t n, int act, void* out, cudaStream_t s);
void add(Dt dt, void* y, const void* x, int64_t n, cudaStream_t s);
void softcap(Dt dt, void* x, int64_t n, float cap, cudaStream_t s);
void gather_rows(Dt dt, const void* x, const int32_t* rows, int64_t n, int64_t H, void* out, cudaStream_t s);
void to_float(Dt dt, const void* x, int64_t n, float* out, cudaStream_t s);
// n e4m3 codes as n half or bfloat16 values (dt F16 or BF16; n a multiple of 8),
// through the conversion the attention kernels read an FP8 cache with, so that a
// test can compare it with runtime/fp8_e4m3.h on all 256 codes.
void fp8_e4m3_to(Dt dt, const uint8_t* codes, int64_t n, void* out, cudaStream_t s);

// Programmatic dependent launch (kernels that overlap their prologue with the
// previous kernel's tail) on or off, for A/B benchmarks; on by default.
void set_programmatic_launch(bool enabled);

// Deterministic N(0, stddev) fill (counter-based hash + Box-Muller), or a constant.
void fill_random(Dt dt, void* x, int64_t n, uint64_t seed, float stddev, cudaStream_t s);
void fill(Dt dt, void* x, int64_t n, float value, cudaStream_t s);

// Per row of logits [rows, vocab]: the argmax and its log-softmax value.
// With masks (rows of ceil(vocab / 32) words; mask_rows[r] >= 0 picks row r's,
// -1 none), a row's argmax and log-softmax are over its allowed tokens only.
void argmax_logprob(Dt dt, const void* logits, int64_t rows, int64_t vocab, int32_t* ids, float* logprobs,
                    void* workspace, cudaStream_t s, const uint32_t* masks = nullptr,
                    const int32_t* mask_rows = nullptr);
int64_t argmax_workspace_bytes(int64_t rows);

// One logits row's token choice (the device form of runtime/token_choice.h's RowChoice).
struct ChooseRow {
  int32_t prompt_target;  // >= 0: only this token's log-prob from the raw logits
  int32_t sample;         // draw; else argmax after penalties
  int32_t top_k;
  int32_t pen_begin, pen_count;  // this row's (token, generated_count, in_context) triples
  int32_t mask_row;              // >= 0: row of `masks` whose set bits are the only choosable tokens
  int32_t top_n;                 // 0..kMaxChooseTop alternatives of the chosen token's distribution
  double temperature, top_p, typical_p, repetition_penalty, frequency_penalty, presence_penalty, uniform;
};
constexpr int kMaxChooseTop = 20;
// ids/logprobs per row of logits [rows, vocab]; scratch holds rows * vocab floats;
// masks: rows of ceil(vocab / 32) words, bit i of word j allowing token 32 j + i.
// top_ids/top_logprobs: kMaxChooseTop per row, the row's top_n most likely finite
// tokens first (as sampling.cpp's top_tokens orders them), then id -1.
void choose_tokens(Dt dt, const void* logits, int64_t rows, int64_t vocab, const ChooseRow* params,
                   const int32_t* penalties, const uint32_t* masks, float* scratch, int32_t* ids, float* logprobs,
                   int32_t* top_ids, float* top_logprobs, cudaStream_t s);

// Segmented LoRA (SGMV-style): for every token row of segment i with adapter
// pair A_i [r_i, in], B_i [out, r_i]: y[row, off : off+out] += scale_i * (x A_i^T) B_i^T.
// The work is read from device memory written before the forward, so a recorded
// decode graph serves any mix of adapters of the same shapes: the shrink's items
// (a run of up to kLoraRows tokens of one segment, with that segment's A) and the
// expand's tasks (such a run times a range of output columns, with B). Entries of
// rank 0 are no work (segments without a pair here, and padding up to the bound).
constexpr int kLoraRows = 4;
constexpr int kMaxLoraRank = 512;  // keeps expand's staged B tile within 48 KB of shared memory
struct LoraWorkItem {
  const void* a;  // [rank, in], 16-byte aligned
  int32_t row0;   // first token row
  int16_t rows;   // 1..kLoraRows
  int16_t rank;   // 0: nothing to do
  int64_t pad[2];
};
struct LoraExpandTask {
  const void* b;  // [out, rank], 16-byte aligned
  int32_t row0;
  int16_t rows;
  int16_t rank;   // 0: nothing to do
  float scale;
  int32_t col0;   // first output column (a multiple of 8)
  int32_t ncols;  // at most LoraCallArgs::max_cols
  int32_t pad;
};
static_assert(sizeof(LoraWorkItem) == 32 && sizeof(LoraExpandTask) == 32, "one 32-byte load per CTA");
struct LoraCallArgs {
  const void* x;  // [T, in]
  void* y;        // [T, ldy]
  int64_t in, ldy, out, col_offset;
  int64_t T;
  int max_rank;   // at least every rank of the call: sizes `partial` and shared memory
  int max_items;  // items[max_items]: the shrink's grid
  int max_tasks;  // tasks[max_tasks]: the expand's grid
  int max_cols;   // widest task
  const LoraWorkItem* items;
  const LoraExpandTask* tasks;
  float* partial;  // scratch: lora_partial_floats(T, in, max_rank)
};
int64_t lora_partial_floats(int64_t T, int64_t in, int max_rank);
// Output columns per expand task when `items` runs of tokens share the call: about
// two CTAs per SM, each as wide as its staged B tile allows (a multiple of 8).
int lora_expand_cols(Dt dt, int max_rank, int64_t out, int64_t items);
// The two halves, so the shrink can run beside the base projection on another stream.
void lora_shrink(Dt dt, const LoraCallArgs& a, cudaStream_t s);
void lora_expand(Dt dt, const LoraCallArgs& a, cudaStream_t s);

}  // namespace lorax::kernels
