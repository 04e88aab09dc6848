// `lorax-engine serve`: the LoRAX-compatible REST server (DESIGN.md §4) over one
// EngineLoop. Pistache runs a fixed pool of reactor threads that parse, validate
// and tokenize requests and hand them to the engine thread; responses are written
// back from the engine thread as tokens arrive.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "adapters/adapter_store.h"
#include "scheduler/engine.h"
#include "server/api/generate_api.h"
#include "server/metrics/registry.h"
#include "tokenizer/tokenizer.h"

namespace lorax::server {

struct ServerConfig {
  std::string host = "0.0.0.0";
  int port = 8080;  // 0 picks a free port (see Server::port())
  std::string api_key;  // empty: no authentication
  bool metrics_require_key = false;  // /metrics behind the key too (--metrics-require-key)
  int max_waiting_requests = 128;
  int max_best_of = 2;  // sequences one request may ask for: LoRAX best_of, OpenAI max(n, best_of) (--max-best-of)
  int http_threads = 4;
  int max_connections = 1024;  // open connections beyond this are answered 503 (--max-connections)
  double keepalive_s = 15;  // idle keep-alive connections are closed after this (--keepalive-timeout-s)
  std::string model_id;   // the base model's name in /info, /v1/models and OpenAI `model`
  std::string model_dir;  // where the chat template is read from
  std::string model_dtype = "float32";  // /info: the compute dtype and the backend the engine runs on
  std::string device_type = "cpu";
  int64_t embedding_dimension = 0;  // > 0: an embedding model (/embed, /v1/embeddings; no generation)
  RequestLimits limits;
  nlohmann::json info_extra = nlohmann::json::object();  // more /info fields (engine settings)
  AdapterStore* adapters = nullptr;  // null: every adapter id is unknown (404)
};

class Server {
 public:
  Server(ServerConfig config, Engine& engine, std::shared_ptr<const Tokenizer> tokenizer);
  ~Server();

  // Binds, starts the engine thread and the HTTP threads; returns at once.
  void start();
  uint16_t port() const;
  // Graceful stop: /health turns 503 and new requests are refused, in-flight
  // requests get until `timeout` to finish, the rest are cancelled, then HTTP stops.
  // Returns true when everything finished in time.
  bool shutdown(std::chrono::milliseconds timeout);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace lorax::server
