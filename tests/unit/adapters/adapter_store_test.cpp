// AdapterStore: sources under --adapter-dir and allowed roots, one load for
// concurrent first requests, clear refusals (404/403/422) that leave the store
// usable, LRU demotion of idle adapters only, unload rules. And the scheduler's
// adapter rotation: a rarely used adapter is served while another keeps arriving,
// with its result equal to its solo run (peft's reference).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <unistd.h>

#include "adapters/adapter_store.h"
#include "fixture_reference.h"
#include "scheduler/engine.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
const std::string kDir = "tests/fixtures/adapters/llama";

struct StoreFixture : ::testing::Test {
  std::unique_ptr<Backend> backend = make_cpu_backend(1);
  std::unique_ptr<Model> model = Model::load("tests/fixtures/models/llama", *backend);
  std::atomic<int> loads{0}, failures{0}, evictions{0};
  std::unique_ptr<AdapterStore> make(int max_device, int max_host = 128, uint64_t max_host_bytes = 0) {
    AdapterStoreConfig c;
    c.sources.adapter_dir = kDir;
    c.sources.roots = {"tests/fixtures/adapters/bad"};
    c.max_device = max_device;
    c.max_host = max_host;
    c.max_host_bytes = max_host_bytes;
    auto s = std::make_unique<AdapterStore>(c, model->spec(), *backend);
    AdapterStoreObserver o;
    o.loaded = [this](const std::string& tier, double) {
      if (tier == "host") ++loads;
    };
    o.load_failed = [this](const std::string&) { ++failures; };
    o.evicted = [this](const std::string&) { ++evictions; };
    s->set_observer(o);
    return s;
  }
  static int status_of(AdapterStore& s, AdapterRequest r) {
    try {
      s.acquire(r);
    } catch (const AdapterError& e) {
      EXPECT_NE(std::string(e.what()).find(r.id), std::string::npos) << "message must name the adapter: " << e.what();
      return adapter_error_status(e);
    }
    return 200;
  }
};

TEST_F(StoreFixture, ConcurrentFirstRequestsLoadOnce) {
  auto store = make(4);
  std::vector<std::shared_ptr<const AdapterWeights>> got(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] { got[i] = store->acquire({"attn-r8", "", "", ""}); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(loads.load(), 1);
  for (auto& g : got) EXPECT_EQ(g.get(), got[0].get());
  ASSERT_EQ(store->list().size(), 1u);
  EXPECT_EQ(store->list()[0].rank, 8);
  EXPECT_TRUE(store->list()[0].in_use);
}

TEST_F(StoreFixture, RefusalsAreClearAndLocal) {
  auto store = make(4);
  EXPECT_EQ(status_of(*store, {"no-such-adapter", "", "", ""}), 404);
  EXPECT_EQ(status_of(*store, {"../../etc", "", "", ""}), 403);
  auto abs = [](const char* p) { return std::filesystem::absolute(p).string(); };
  EXPECT_EQ(status_of(*store, {abs("tests/fixtures/adapters/../../../etc"), "local", "", ""}), 403);
  EXPECT_EQ(status_of(*store, {"/etc", "local", "", ""}), 403);
  // A sibling whose name merely starts with a root's name is outside it.
  EXPECT_EQ(status_of(*store, {abs("tests/fixtures/adapters/bad-sibling"), "local", "", ""}), 403);
  EXPECT_EQ(status_of(*store, {abs("tests/fixtures/adapters/bad/truncated"), "local", "", ""}), 422);
  EXPECT_EQ(status_of(*store, {abs("tests/fixtures/adapters/bad/wrong-shape"), "local", "", ""}), 422);
  EXPECT_EQ(status_of(*store, {"x", "ftp", "", ""}), 422);
  // A relative `local` path would depend on the server's working directory.
  EXPECT_EQ(status_of(*store, {"tests/fixtures/adapters/llama/attn-r8", "local", "", ""}), 422);
  EXPECT_EQ(failures.load(), 9);
  // A symlink inside the root pointing outside it is an escape too.
  const fs::path link = fs::path(kDir) / ("escape-" + std::to_string(::getpid()));
  fs::create_directory_symlink("/etc", link);
  EXPECT_EQ(status_of(*store, {link.filename().string(), "", "", ""}), 403);
  fs::remove(link);
  EXPECT_EQ(status_of(*store, {"attn-r8", "", "", ""}), 200);
  EXPECT_EQ(status_of(*store, {fs::absolute(kDir + "/mlp-r1-layers").string(), "local", "", ""}), 200);
}

TEST_F(StoreFixture, LruDemotesOnlyIdleAdapters) {
  auto store = make(2, 1);
  auto held = store->acquire({"attn-r8", "", "", ""});  // in use throughout
  store->acquire({"all-r4-patterns", "", "", ""});
  store->acquire({"mlp-r1-layers", "", "", ""});  // all-r4-patterns is the idle LRU: demoted
  EXPECT_EQ(evictions.load(), 1);
  std::map<std::string, AdapterInfo> by_id;
  for (auto& i : store->list()) by_id[i.id] = i;
  EXPECT_EQ(by_id.at("attn-r8").tier, "device");
  EXPECT_EQ(by_id.at("all-r4-patterns").tier, "host");
  EXPECT_EQ(by_id.at("mlp-r1-layers").tier, "device");
  store->acquire({"all-r16-rslora", "", "", ""});  // mlp-r1-layers demoted, host overflow drops all-r4-patterns
  EXPECT_EQ(evictions.load(), 3);
  EXPECT_EQ(store->list().size(), 3u);
  EXPECT_EQ(loads.load(), 4);
  EXPECT_EQ(store->unload("attn-r8"), AdapterStore::Unload::InUse);
  held.reset();
  EXPECT_EQ(store->unload("attn-r8"), AdapterStore::Unload::Ok);
  EXPECT_EQ(store->unload("attn-r8"), AdapterStore::Unload::NotFound);
  // Promotion from the host tier needs no new load.
  store->acquire({"mlp-r1-layers", "", "", ""});
  EXPECT_EQ(loads.load(), 4);
}

// Prefix caching keys K/V by kv_identity: one load keeps it across demotion and
// promotion (same weights), another adapter or a reload gets another.
TEST_F(StoreFixture, KvIdentityFollowsTheLoadNotTheDeviceCopy) {
  auto store = make(1, 4);
  const uint64_t attn = store->acquire({"attn-r8", "", "", ""})->kv_identity();
  const uint64_t mlp = store->acquire({"mlp-r1-layers", "", "", ""})->kv_identity();  // attn-r8 demoted
  EXPECT_NE(attn, mlp);
  EXPECT_NE(attn, 0u) << "0 is the base model's";
  EXPECT_EQ(store->acquire({"attn-r8", "", "", ""})->kv_identity(), attn) << "promoted from the host copy";
  EXPECT_EQ(store->unload("attn-r8"), AdapterStore::Unload::Ok);
  EXPECT_NE(store->acquire({"attn-r8", "", "", ""})->kv_identity(), attn) << "a reload may have new weights";
}

TEST_F(StoreFixture, RequestReturnsATicketAndLoadsOffTheCallersThread) {
  auto store = make(4);
  const auto caller = std::this_thread::get_id();
  std::mutex mu;
  std::thread::id load_thread;  // where the store reported the load: its loader thread
  AdapterStoreObserver o;
  o.loaded = [&](const std::string& tier, double) {
    std::lock_guard lock(mu);
    if (tier == "host") load_thread = std::this_thread::get_id();
  };
  store->set_observer(o);
  std::atomic<bool> called{false};
  auto ticket = store->request({"attn-r8", "", "", ""});
  ticket->when_done([&] { called = true; });  // at once on this thread when the load already finished
  ticket->wait();
  for (int i = 0; i < 1000 && !called; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(called.load());
  {
    std::lock_guard lock(mu);
    EXPECT_NE(load_thread, std::thread::id()) << "the load was not reported";
    EXPECT_NE(load_thread, caller) << "the load ran on the caller's thread";
  }
  EXPECT_EQ(ticket->error(), nullptr);
  // Loaded into the host tier only: the device copy waits for the scheduler.
  ASSERT_EQ(store->list().size(), 1u);
  EXPECT_EQ(store->list()[0].tier, "host");
  EXPECT_EQ(store->list()[0].requests, 1);
  EXPECT_EQ(store->lease("attn-r8"), nullptr);
  EXPECT_EQ(store->make_resident("attn-r8", {}).state, AdapterResidency::State::Resident);
  EXPECT_NE(store->lease("attn-r8"), nullptr);
  // A failing load reaches its ticket as the AdapterError to answer with.
  auto missing = store->request({"no-such-adapter", "", "", ""});
  missing->wait();
  ASSERT_NE(missing->error(), nullptr);
  try {
    std::rethrow_exception(missing->error());
  } catch (const AdapterError& e) {
    EXPECT_EQ(adapter_error_status(e), 404);
  }
}

TEST_F(StoreFixture, TicketsPinTheHostCopyAndLeasesTheDeviceCopy) {
  auto store = make(1, 0);
  auto a = store->request({"attn-r8", "", "", ""});
  auto b = store->request({"mlp-r1-layers", "", "", ""});
  a->wait();
  b->wait();
  // Both stay although the host tier holds none: queued requests hold them.
  EXPECT_EQ(store->list().size(), 2u);
  ASSERT_EQ(store->make_resident("attn-r8", {}).state, AdapterResidency::State::Resident);
  auto running = store->lease("attn-r8");
  // The only device slot is leased: nothing can take it, whatever `keep` says.
  EXPECT_EQ(store->make_resident("mlp-r1-layers", {}).state, AdapterResidency::State::NoRoom);
  running.reset();
  // Idle but kept (the scheduler still wants it): still no room.
  EXPECT_EQ(store->make_resident("mlp-r1-layers", {"attn-r8"}).state, AdapterResidency::State::NoRoom);
  EXPECT_EQ(store->make_resident("mlp-r1-layers", {}).state, AdapterResidency::State::Resident);
  EXPECT_EQ(evictions.load(), 1);
  EXPECT_EQ(store->unload("attn-r8"), AdapterStore::Unload::InUse);  // its ticket is alive
  a.reset();  // the request finished: an idle host-tier adapter beyond --max-host-adapters 0 goes
  EXPECT_EQ(store->list().size(), 1u);
  EXPECT_EQ(store->unload("attn-r8"), AdapterStore::Unload::NotFound);
}

TEST_F(StoreFixture, ByteBudgetRefusesAnAdapterThatCanNeverFit) {
  auto probe = make(1);
  probe->load({"attn-r8", "", "", ""});
  const size_t bytes = probe->list().at(0).bytes;
  auto store = make(4, 128, bytes - 1);
  try {
    store->load({"attn-r8", "", "", ""});
    FAIL() << "an adapter above the byte budget loaded";
  } catch (const AdapterError& e) {
    EXPECT_EQ(adapter_error_status(e), 422);
    EXPECT_NE(std::string(e.what()).find("--max-host-adapter-bytes"), std::string::npos) << e.what();
  }
  // Within the budget, idle adapters make way by bytes as well as by count.
  auto fits = make(4, 128, bytes + 1);
  fits->load({"attn-r8", "", "", ""});
  fits->load({"mlp-r1-layers", "", "", ""});
  std::set<std::string> ids;
  for (auto& i : fits->list()) ids.insert(i.id);
  EXPECT_FALSE(ids.count("attn-r8")) << "the idle LRU adapter should have been dropped for the byte budget";
}

TEST_F(StoreFixture, AFullHostReservationMakesALoadWaitForAnIdleAdapter) {
  auto probe = make(4);
  std::map<std::string, size_t> bytes;
  for (const char* id : {"all-r16-rslora", "attn-r8", "all-r4-patterns"}) probe->load({id, "", "", ""});
  for (auto& i : probe->list()) bytes[i.id] = i.bytes;
  probe.reset();  // the backend's reservation counts what every store holds
  // Room for the first two, not for the third as well.
  auto store = make(4, 128, bytes["all-r16-rslora"] + bytes["attn-r8"] + bytes["all-r4-patterns"] / 2);
  store->reserve_host_memory();
  auto a = store->request({"all-r16-rslora", "", "", ""});
  auto b = store->request({"attn-r8", "", "", ""});
  a->wait();
  b->wait();
  ASSERT_EQ(a->error(), nullptr);
  ASSERT_EQ(b->error(), nullptr);
  // The third needs memory both in-use adapters hold: it waits instead of failing.
  auto c = store->request({"all-r4-patterns", "", "", ""});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(c->done());
  a.reset();  // a request finished: its adapter may make way
  c->wait();
  EXPECT_EQ(c->error(), nullptr);
  std::set<std::string> ids;
  for (auto& i : store->list()) ids.insert(i.id);
  EXPECT_EQ(ids, (std::set<std::string>{"attn-r8", "all-r4-patterns"}));
  EXPECT_EQ(store->list().size(), 2u);
}

TEST_F(StoreFixture, RotationServesARareAdapter) {
  auto store = make(4);
  auto busy = store->acquire({"attn-r8", "", "", ""});
  auto rare = store->acquire({"all-r16-rslora", "", "", ""});
  testing::Reference ref = testing::read_reference(kDir + "/all-r16-rslora");
  const auto& c = ref.cases[0];
  KvCache kv(*backend, model->spec().num_layers, 512, 4, model->spec().num_kv_heads, model->spec().head_dim);
  EngineConfig cfg;
  cfg.max_active_adapters = 1;
  cfg.adapter_cycle_time_s = 0;
  Engine engine(*model, kv, nullptr, cfg);
  auto make_req = [&](const std::shared_ptr<const AdapterWeights>& a, int max_new) {
    GenerationRequest r;
    r.prompt_ids = c.input_ids;
    r.stopping.max_new_tokens = max_new;
    r.stopping.ignore_eos_token = true;
    r.adapter = a;
    r.adapter_id = a->id;
    return r;
  };
  for (int i = 0; i < 3; ++i) engine.submit(make_req(busy, 4));
  std::vector<int32_t> rare_tokens;
  bool rare_done = false;
  GenerationRequest r = make_req(rare, ref.max_new_tokens);
  r.on_finish = [&](const FinishInfo& info) {
    rare_done = true;
    for (auto& t : info.tokens) rare_tokens.push_back(t.id);
  };
  engine.submit(std::move(r));
  // The busy adapter keeps getting new requests every step.
  int steps = 0;
  while (!rare_done && steps < 200) {
    engine.submit(make_req(busy, 4));
    engine.step();
    ++steps;
  }
  ASSERT_TRUE(rare_done) << "the rare adapter starved";
  EXPECT_EQ(rare_tokens, c.greedy_ids);
  EXPECT_EQ(engine.stats().max_adapters_in_batch, 1);
  engine.run_until_idle();
}

TEST_F(StoreFixture, ChangedRegistryEntryReplacesTheCopyOnlyWhenIdle) {
  // The registry (--adapter-registry) maps "bot" to one fixture adapter, then to another:
  // the loaded copy is replaced once no request holds it, never under a running request.
  const fs::path reg = fs::temp_directory_path() / ("lorax-registry-" + std::to_string(::getpid()) + ".json");
  auto write = [&](const std::string& adapter) {
    std::ofstream(reg) << R"([{"id": "bot", "source": "local", "location": ")" +
                              fs::absolute(kDir + "/" + adapter).string() + R"("}])";
    fs::last_write_time(reg, fs::last_write_time(reg) + std::chrono::seconds(adapter == "attn-r8" ? 0 : 5));
  };
  write("attn-r8");
  auto store = make(4);
  store->set_registry(std::make_shared<AdapterRegistry>(reg.string()));
  auto held = store->request({"bot"});
  held->wait();
  ASSERT_FALSE(held->error());
  const int ranks_before = store->list().front().rank;
  write("mlp-r1-layers");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the registry looks at most once a second
  EXPECT_EQ(status_of(*store, {"bot"}), 422);                     // in use: the new version waits
  held.reset();
  EXPECT_EQ(status_of(*store, {"bot"}), 200);
  EXPECT_NE(store->list().front().rank, ranks_before);            // attn-r8 is rank 8, mlp-r1-layers rank 1
  fs::remove(reg);
}

}  // namespace
}  // namespace lorax
