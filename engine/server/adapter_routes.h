// The admin routes of the engine server: GET /adapters (loaded adapters with
// tier, size, rank, last use), POST /adapters {"adapter_id", "adapter_source",
// "api_token", "sha256"} (load), DELETE /adapters/{id} (unload: 404 unknown, 409
// in use). Kept free of Pistache: the server passes method, path and body in.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "adapters/adapter_store.h"

namespace lorax::server {

struct AdapterRouteResult {
  int status = 200;
  nlohmann::json body;
};

bool is_adapter_route(const std::string& path);
// method: "GET", "POST", "DELETE" (anything else: 405). `store` null: adapters disabled.
AdapterRouteResult handle_adapter_route(AdapterStore* store, const std::string& method, const std::string& path,
                                        const std::string& body);
nlohmann::json adapter_info_json(const AdapterInfo& info);
// {"error", "error_type"} with the status of an adapter error.
AdapterRouteResult adapter_error_result(const AdapterError& e);

}  // namespace lorax::server
