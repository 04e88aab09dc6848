// `lorax-engine serve`: loads the model through EngineSetup (the shared engine
// flags) and runs the REST server until SIGTERM/SIGINT, then shuts down
// gracefully: /health turns 503, in-flight requests get --shutdown-timeout-s to
// finish, and the process exits 0.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <sys/resource.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/engine_setup.h"
#include "cli/model_fetch.h"
#include "server/server.h"

namespace lorax::cli {
namespace {

// Descriptors kept free of connections: the model's and adapters' files, the reactor's
// epoll and timer descriptors, downloads.
constexpr rlim_t kReservedDescriptors = 128;

// The connection cap, checked against RLIMIT_NOFILE: past the limit accept() fails and
// new clients (kubelet's probes among them) hang instead of getting a 503. The soft limit
// is raised to the hard one first, as nginx's worker_rlimit_nofile or Go's runtime do.
int connection_cap(const Args& args) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  const rlim_t usable = lim.rlim_cur > kReservedDescriptors ? lim.rlim_cur - kReservedDescriptors : 0;
  const long long fits = static_cast<long long>(std::min<rlim_t>(usable, 1 << 20));
  if (!args.has("max-connections")) return static_cast<int>(std::max(1LL, std::min(1024LL, fits)));
  const long long n = args.get_int("max-connections", 1024);
  if (n <= 0) throw UsageError("--max-connections must be positive");
  if (n > fits)
    throw UsageError("--max-connections " + std::to_string(n) + " needs more file descriptors than the limit of " +
                     std::to_string(lim.rlim_cur) + " allows (" + std::to_string(kReservedDescriptors) +
                     " are kept for files); at most " + std::to_string(fits) + ", or raise `ulimit -n`");
  return static_cast<int>(n);
}

int run_serve(const std::vector<std::string>& argv) {
  // Signals are taken synchronously by this thread (sigwait); every thread started
  // from here on inherits the blocked mask. SIGPIPE from a vanished client is ignored.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::set<std::string> value_flags = {"model",  "host", "port", "api-key", "max-waiting-requests",
                                       "shutdown-timeout-s", "http-threads", "model-id",
                                       "keepalive-timeout-s", "max-connections", "max-best-of"};
  for (auto& f : engine_value_flags()) value_flags.insert(f);
  Args args(argv, value_flags, {"metrics-require-key"});

  server::ServerConfig cfg;
  cfg.host = args.get_or("host", "0.0.0.0");
  const long long port = args.get_int("port", 8080);
  if (port < 0 || port > 65535) throw UsageError("--port must be 0..65535");
  cfg.port = static_cast<int>(port);
  cfg.api_key = args.get_or("api-key", "");
  cfg.metrics_require_key = args.has("metrics-require-key");
  if (cfg.metrics_require_key && cfg.api_key.empty()) throw UsageError("--metrics-require-key needs --api-key");
  cfg.max_waiting_requests = static_cast<int>(args.get_int("max-waiting-requests", 128));
  if (cfg.max_waiting_requests <= 0) throw UsageError("--max-waiting-requests must be positive");
  cfg.max_best_of = static_cast<int>(args.get_int("max-best-of", 2));
  if (cfg.max_best_of < 1 || cfg.max_best_of > 64) throw UsageError("--max-best-of must be 1..64");
  cfg.http_threads = static_cast<int>(args.get_int("http-threads", 4));
  if (cfg.http_threads <= 0) throw UsageError("--http-threads must be positive");
  cfg.max_connections = connection_cap(args);
  cfg.keepalive_s = args.get_double("keepalive-timeout-s", 15);
  if (!(cfg.keepalive_s > 0 && cfg.keepalive_s <= 3600)) throw UsageError("--keepalive-timeout-s must be in (0, 3600]");
  const double shutdown_s = args.get_double("shutdown-timeout-s", 30);
  if (!(shutdown_s >= 0)) throw UsageError("--shutdown-timeout-s must be >= 0");
  EngineSetup setup = EngineSetup::create(args);
  cfg.model_dir = setup.model_dir;
  cfg.model_dtype = dtype_name(setup.backend->compute_dtype());
  cfg.device_type = setup.backend->name();
  if (const EmbeddingHead* head = setup.model->embedding_head()) cfg.embedding_dimension = head->dimension();
  // The served name: --model-id, else the hub name of an hf:// model, else the folder.
  const std::string hub_name = hf_repo_of(args.require("model"));
  cfg.model_id = args.get_or("model-id", hub_name.empty() ? setup.model_dir : hub_name);
  cfg.limits = setup.limits;
  // /info shows the engine settings, but not where files live on this machine.
  static const std::set<std::string> paths = {"adapter-dir", "adapter-root", "adapter-cache-dir", "model-cache-dir",
                                              "adapter-registry"};
  for (const std::string& f : engine_value_flags())
    if (auto v = args.get(f); v && !paths.count(f)) cfg.info_extra[f] = *v;

  cfg.adapters = setup.adapters.get();
  setup.adapters->reserve_host_memory();
  server::Server srv(cfg, *setup.engine, setup.tokenizer);
  srv.start();
  std::printf("lorax-engine listening on %s:%u\n", cfg.host.c_str(), static_cast<unsigned>(srv.port()));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "lorax-engine: signal %d, shutting down (up to %gs for in-flight requests)\n", sig, shutdown_s);
  const bool drained = srv.shutdown(std::chrono::milliseconds(static_cast<long long>(shutdown_s * 1000)));
  std::fprintf(stderr, "lorax-engine: stopped%s\n", drained ? "" : " (requests still running were cancelled)");
  return 0;
}

CommandRegistration reg("serve", "run the LoRAX-compatible REST server", &run_serve);

}  // namespace
}  // namespace lorax::cli
