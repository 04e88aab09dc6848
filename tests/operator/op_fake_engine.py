"""A fake engine pod: /health and the admin adapter endpoints of DESIGN.md §4, recording calls. Its adapter
registry (engine --adapter-registry) is whatever `registry()` returns: the harness reads the deployment's adapter
ConfigMap from the API-server double, as kubelet would mount it."""
import http.server
import json
import socketserver
import threading
import urllib.parse


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        eng = self.server.engine
        if self.path == "/health":
            return self._send(200, {})
        if self.path == "/adapters":
            return self._send(200, sorted(eng.loaded))
        if self.path.startswith("/adapters/"):
            aid = urllib.parse.unquote(self.path[len("/adapters/"):])
            with eng.lock:
                eng.calls.append(("GET", aid))
                reg = eng.registry()
                registered, loaded = aid in reg, aid in eng.loaded
            if not registered and not loaded:
                return self._send(404, {"error": "unknown adapter", "error_type": "not_found"})
            out = {"adapter_id": aid, "registered": registered, "loaded": loaded}
            if registered and "generation" in reg[aid]:
                out["registry_generation"] = reg[aid]["generation"]
            return self._send(200, out)
        self._send(404, {"error": "not found", "error_type": "not_found"})

    def do_POST(self):
        eng = self.server.engine
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path != "/adapters":
            return self._send(404, {"error": "not found", "error_type": "not_found"})
        with eng.lock:
            eng.calls.append(("POST", body))
            if eng.fail_loads > 0:
                eng.fail_loads -= 1
                return self._send(422, {"error": "cannot load adapter", "error_type": "validation"})
            if set(body) == {"adapter_id"}:  # a registered id: loads (or reloads) the registry's current entry
                entry = eng.registry().get(body["adapter_id"])
                if entry is None:
                    return self._send(404, {"error": "unknown adapter", "error_type": "not_found"})
                eng.loaded_from[body["adapter_id"]] = entry["location"]
            elif set(body) != {"adapter_id", "adapter_source"} or \
                    body["adapter_source"] not in ("local", "hub", "s3", "url"):
                return self._send(422, {"error": "bad body", "error_type": "validation"})
            eng.loaded.add(body["adapter_id"])
        self._send(200, {"adapter_id": body["adapter_id"]})

    def do_DELETE(self):
        eng = self.server.engine
        if not self.path.startswith("/adapters/"):
            return self._send(404, {"error": "not found", "error_type": "not_found"})
        aid = urllib.parse.unquote(self.path[len("/adapters/"):])
        with eng.lock:
            eng.calls.append(("DELETE", aid))
            if aid not in eng.loaded:
                return self._send(404, {"error": "unknown adapter", "error_type": "not_found"})
            eng.loaded.discard(aid)
        self._send(200, {})


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeEngine:
    def __init__(self, ip, port, registry=dict):
        self.lock = threading.Lock()
        self.calls = []
        self.loaded = set()
        self.fail_loads = 0
        self.registry = registry  # () -> {id: registry entry}
        self.loaded_from = {}  # id -> the registry location it was last loaded from
        self.ip, self.port = ip, port
        self.httpd = _Server((ip, port), _Handler)
        self.httpd.engine = self
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
