// Wires caches, event handlers and the two controllers together and runs them.
#pragma once

#include <atomic>

#include "app/config.h"
#include "kube/client.h"
#include "server/metrics/registry.h"

namespace lorax::op {

// Runs until stop is set. `synced` turns true once every cache has listed.
void run_manager(const OperatorConfig& cfg, kube::Client& client, metrics::Registry& reg, const std::atomic<bool>& stop,
                 std::atomic<bool>& synced);

}  // namespace lorax::op
