// One thread owns the Engine (which is single-threaded) and steps it whenever
// there is work. HTTP handler threads hand it requests through a
// mutex/condvar-protected inbox; each request carries a Sink that receives its
// tokens and its finish on the engine thread. A request whose adapter is still
// loading waits here (no HTTP thread waits for it) and reaches the engine once the
// adapter is in the host tier, or is refused with the load's 4xx. The waiting queue
// is bounded: submit() refuses at once when it is full, so the server can answer 429.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "adapters/adapter_store.h"
#include "scheduler/engine.h"
#include "server/adapter_metrics.h"
#include "server/server_metrics.h"

namespace lorax::server {

using Clock = std::chrono::steady_clock;

// What one request's HTTP side implements. All calls come from the engine thread.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void on_start() {}  // accepted by the engine thread (streams send their headers here)
  virtual void on_token(const GeneratedToken& tok) = 0;
  // After each engine step (a token's finish, if any, is known by then).
  virtual void on_step_end() {}
  virtual void on_finish(const FinishInfo& info) = 0;
  // After the engine has let go of the finished request (KV blocks freed, adapter lease dropped):
  // final responses are written here, so a client never sees its answer while the request still
  // holds resources (e.g. an adapter unload right after the response would find it in use).
  virtual void on_retired() {}
  // The request never ran: Engine::submit refused it (it can never fit the KV
  // cache: 422), its adapter could not be loaded (404/403/422), or the server stops.
  virtual void on_rejected(const std::string& message, int status = 422, const std::string& error_type = "validation") = 0;
  // False once the client has gone away; the request is then cancelled.
  virtual bool alive() const = 0;
};

struct Job {
  GenerationRequest request;  // callbacks are set by the loop
  std::shared_ptr<Sink> sink;
  std::shared_ptr<AdapterTicket> adapter;  // the request's adapter load, if it names one
  Clock::time_point received = Clock::now();
};

class EngineLoop {
 public:
  EngineLoop(Engine& engine, ServerMetrics& metrics, int max_waiting_requests);
  ~EngineLoop();

  // Before start(): where the per-adapter queue gauges go.
  void set_adapter_metrics(AdapterMetrics* m) { adapter_metrics_ = m; }
  void start();
  enum class Admit { Accepted, QueueFull, ShuttingDown };
  Admit submit(Job job);
  Admit submit(std::vector<Job> jobs);  // all of them, or none when the queue has no room for all
  // Refuses new work from now on (submit answers ShuttingDown).
  void close();
  // Waits until every accepted request has finished, or the deadline passes; true when drained.
  bool drain(Clock::time_point deadline);
  // Cancels whatever is left and joins the thread.
  void stop();

  size_t in_flight() const { return in_flight_.load(); }
  bool running() const { return thread_.joinable() && !stopping_.load(); }

 private:
  struct Active;
  void run();
  size_t admit(std::vector<Job>& jobs);  // returns how many Engine::submit refused
  // Jobs whose adapter is loaded go on to admit(); returns how many were refused or abandoned.
  size_t take_loaded(std::vector<Job>& ready);
  void adapter_loaded();
  void cancel_dead();
  void retire(Active& act);
  void publish_gauges();

  Engine& engine_;
  ServerMetrics& metrics_;
  AdapterMetrics* adapter_metrics_ = nullptr;
  const int max_waiting_;

  std::mutex mu_;
  std::condition_variable wake_, drained_;
  std::vector<Job> inbox_;
  bool adapter_event_ = false;  // a pending job's adapter load finished
  bool closed_ = false;
  bool stop_requested_ = false;
  int engine_running_ = 0;  // the engine's running batch, published with engine_waiting_
  int engine_waiting_ = 0;  // engine's waiting queue and pending_, published under mu_ after each step

  // Load callbacks reach the loop through this; stop() disconnects it.
  struct Doorbell {
    std::mutex mu;
    EngineLoop* loop = nullptr;
  };
  std::shared_ptr<Doorbell> doorbell_ = std::make_shared<Doorbell>();
  std::vector<Job> pending_;  // engine thread only: adapters still loading

  std::atomic<bool> stopping_{false};
  std::atomic<size_t> in_flight_{0};
  uint64_t preemptions_seen_ = 0, prefix_queries_seen_ = 0, prefix_hits_seen_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<Active>> active_;  // engine thread only
  std::thread thread_;
};

}  // namespace lorax::server
