"""An API-server test double that enforces the Kubernetes semantics lorax-operator relies on:

- list/watch with resourceVersion, bookmarks, 410 Gone for compacted history (as an ERROR
  event in the stream, like the real server), timeoutSeconds, equality label selectors;
- optimistic concurrency: PUT with a stale or missing metadata.resourceVersion -> 409/422;
- the status subresource (PUT .../status changes only status; PUT on the object never does);
- server-side apply (PATCH application/apply-patch+yaml): fieldManager required, managedFields
  per manager, conflicts with other managers' fields (409 unless force=true), no-op applies do
  not bump resourceVersion, fields a manager stops applying are removed;
- finalizers and deletionTimestamp, background garbage collection through ownerReferences (also of objects
  created after their owners are gone),
  CRD schema defaulting/validation for our custom resources;
- a tiny "kube-controller-manager + kubelet" that gives Deployments pods and status.
Every HTTP request is logged so tests can count reads and writes per client token."""
import base64
import copy
import http.server
import itertools
import json
import re
import socketserver
import threading
import time
import urllib.parse
import uuid

import jsonschema
import yaml

from op_crd_schema import apply_defaults, check_cel, load_crd, schema_for

KINDS = {  # plural -> (group, version, kind, namespaced, has_status_subresource)
    "loraxdeployments": ("lorax.dev", "v1alpha1", "LoraxDeployment", True, True),
    "adapters": ("lorax.dev", "v1alpha1", "Adapter", True, True),
    "deployments": ("apps", "v1", "Deployment", True, True),
    "pods": ("", "v1", "Pod", True, True),
    "services": ("", "v1", "Service", True, True),
    "configmaps": ("", "v1", "ConfigMap", True, False),
    "secrets": ("", "v1", "Secret", True, False),
    "events": ("", "v1", "Event", True, False),
    "poddisruptionbudgets": ("policy", "v1", "PodDisruptionBudget", True, True),
    "horizontalpodautoscalers": ("autoscaling", "v2", "HorizontalPodAutoscaler", True, True),
    "leases": ("coordination.k8s.io", "v1", "Lease", True, False),
    "servicemonitors": ("monitoring.coreos.com", "v1", "ServiceMonitor", True, False),
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ApiError(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self):
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": self.message,
                "reason": self.reason, "code": self.code}


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def field_paths(obj, prefix=()):
    """Leaf paths of an applied configuration; lists are atomic (one leaf)."""
    out = {}
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            out.update(field_paths(v, prefix + (k,)))
    else:
        out[prefix] = obj
    return out


def get_path(obj, path):
    for p in path:
        if not isinstance(obj, dict) or p not in obj:
            return None
        obj = obj[p]
    return obj


def set_path(obj, path, value):
    for p in path[:-1]:
        obj = obj.setdefault(p, {})
    obj[path[-1]] = copy.deepcopy(value)


def del_path(obj, path):
    parents = []
    for p in path[:-1]:
        if not isinstance(obj, dict) or p not in obj:
            return
        parents.append((obj, p))
        obj = obj[p]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    for parent, key in reversed(parents):  # prune emptied maps
        if parent[key] == {}:
            del parent[key]


def labels_match(obj, selector):
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    for term in selector.split(","):
        k, _, v = term.partition("=")
        if labels.get(k.strip()) != v.strip():
            return False
    return True


_BIN = [("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)]


def canonical_quantity(q):
    """The API server stores quantities canonicalized (1024Mi -> 1Gi, 1000m -> 1); the subset of
    resource.Quantity's rules that our objects can hit."""
    s = str(q)
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|Pi|Ei)?", s)
    if m:
        n = int(m[1]) * dict(_BIN).get(m[2], 1)
        if m[2] or n >= 1024:
            for suf, mul in _BIN:
                if n % mul == 0:
                    return f"{n // mul}{suf}"
        return str(n)
    m = re.fullmatch(r"(\d+)m", s)
    if m and int(m[1]) % 1000 == 0:
        return str(int(m[1]) // 1000)
    return s


def canonicalize_resources(obj):
    for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        for k in ("limits", "requests"):
            for name, v in c.get("resources", {}).get(k, {}).items():
                c["resources"][k][name] = canonical_quantity(v)


class Store:
    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 1000
        self.objects = {}          # (plural, ns, name) -> obj
        self.history = []          # (rv, plural, type, obj)
        self.compacted_rv = 0      # watches from below this get 410
        self.managed = {}          # (plural, ns, name) -> {manager: {path: value}}
        self.conflicts = {}        # (method, path) -> remaining forced 409s
        self.write_hooks = []
        self.ip_for_pod = lambda name: ""
        self.ready_pods = True
        self.serve_service_monitors = False

    # --- storage primitives (caller holds self.cond) ---
    def _bump(self, plural, typ, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, plural, typ, copy.deepcopy(obj)))
        self.cond.notify_all()

    def _put(self, plural, obj, typ):
        if plural == "deployments":
            canonicalize_resources(obj)  # stored (and returned) form differs from what was sent
        m = obj["metadata"]
        self.objects[(plural, m.get("namespace", ""), m["name"])] = obj
        self._bump(plural, typ, obj)
        # The garbage collector also takes an object created with owner references none of
        # which exists any more (a reconcile that raced its owner's deletion), as Kubernetes does.
        refs = {r.get("uid") for r in m.get("ownerReferences", [])}
        if typ == "ADDED" and refs and not any(o["metadata"].get("uid") in refs for o in self.objects.values()):
            self._delete(plural, obj)

    def _delete_now(self, plural, obj):
        m = obj["metadata"]
        key = (plural, m.get("namespace", ""), m["name"])
        self.objects.pop(key, None)
        self.managed.pop(key, None)
        self._bump(plural, "DELETED", obj)
        # Background garbage collection: dependents of a deleted owner go too.
        uid = m.get("uid")
        for (p, ns, name), o in list(self.objects.items()):
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", [])):
                self._delete(p, o)

    def _delete(self, plural, obj):
        if obj["metadata"].get("finalizers"):
            if "deletionTimestamp" not in obj["metadata"]:
                obj["metadata"]["deletionTimestamp"] = now()
                self._bump(plural, "MODIFIED", obj)
        else:
            self._delete_now(plural, obj)

    # --- test controls ---
    def compact(self):
        """Forget all history: every watch resuming from an older resourceVersion gets 410."""
        with self.cond:
            self.history.clear()
            self.compacted_rv = self.rv + 1

    def inject_conflict(self, method, path, count=1):
        with self.cond:
            self.conflicts[(method, path)] = count

    def get(self, plural, ns, name):
        with self.cond:
            o = self.objects.get((plural, ns, name))
            return copy.deepcopy(o) if o else None

    def list(self, plural, ns=None):
        with self.cond:
            return [copy.deepcopy(o) for (p, n, _), o in self.objects.items() if p == plural and (ns is None or n == ns)]

    def client_write(self, plural, obj, typ="ADDED"):
        """A write by another client (kubectl, HPA): goes through the same rules."""
        with self.cond:
            self._prepare_new(plural, obj) if typ == "ADDED" else None
            self._put(plural, obj, typ)
            self._after_write(plural, obj)

    def client_delete(self, plural, ns, name):
        with self.cond:
            obj = self.objects.get((plural, ns, name))
            if obj:
                self._delete(plural, obj)

    # --- semantics ---
    def _prepare_new(self, plural, obj):
        group, version, kind, _, _ = KINDS[plural]
        obj["apiVersion"] = f"{group}/{version}" if group else version
        obj["kind"] = kind
        m = obj["metadata"]
        m.setdefault("uid", str(uuid.uuid4()))
        m.setdefault("creationTimestamp", now())
        m["generation"] = 1
        if group == "lorax.dev":
            apply_defaults(obj)
            try:
                jsonschema.validate(obj, schema_for(kind, strict=False))
                check_cel(obj, schema_for(kind, strict=False))
            except jsonschema.ValidationError as e:
                raise ApiError(422, "Invalid", f"{kind} is invalid: {e.message}")

    def _after_write(self, plural, obj):
        if plural == "deployments":
            self._sync_deployment(obj)

    def _sync_deployment(self, dep):
        """Stand-in for the Deployment controller and kubelets: pods named <dep>-<i>."""
        m = dep["metadata"]
        ns, name = m["namespace"], m["name"]
        replicas = dep["spec"].get("replicas", 1)
        tmpl_labels = dep["spec"]["template"]["metadata"].get("labels", {})
        want = {f"{name}-{i}" for i in range(replicas)}
        for (p, n, pn), pod in list(self.objects.items()):
            if p == "pods" and n == ns and pod["metadata"].get("ownerReferences", [{}])[0].get("uid") == m["uid"] \
                    and pn not in want:
                self._delete_now("pods", pod)
        ready = 0
        for pn in sorted(want):
            ip = self.ip_for_pod(pn)
            is_ready = bool(ip) and self.ready_pods
            ready += is_ready
            cur = self.objects.get(("pods", ns, pn))
            status = {"phase": "Running", "podIP": ip,
                      "conditions": [{"type": "Ready", "status": "True" if is_ready else "False"}]}
            if cur and cur.get("status") == status:
                continue
            pod = cur or {"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": pn, "namespace": ns, "uid": str(uuid.uuid4()), "labels": tmpl_labels,
                                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                            "name": name, "uid": m["uid"], "controller": True}]},
                          "spec": dep["spec"]["template"]["spec"]}
            pod["status"] = status
            self._put("pods", pod, "MODIFIED" if cur else "ADDED")
        st = {"observedGeneration": m["generation"], "replicas": replicas, "updatedReplicas": replicas,
              "readyReplicas": ready, "availableReplicas": ready}
        if dep.get("status") != st:
            dep["status"] = st
            self._bump("deployments", "MODIFIED", dep)

    def resync_deployments(self):
        with self.cond:
            for (p, _, _), o in list(self.objects.items()):
                if p == "deployments":
                    self._sync_deployment(o)

    def create(self, plural, ns, body):
        with self.cond:
            body.setdefault("metadata", {})["namespace"] = ns
            name = body["metadata"].get("name")
            if not name:
                raise ApiError(422, "Invalid", "metadata.name is required")
            if (plural, ns, name) in self.objects:
                raise ApiError(409, "AlreadyExists", f"{plural} \"{name}\" already exists")
            has_status = KINDS[plural][4]
            if has_status:
                body.pop("status", None)
            self._prepare_new(plural, body)
            self._put(plural, body, "ADDED")
            self._after_write(plural, body)
            return copy.deepcopy(body)

    def _check_rv(self, method, path, cur, body):
        left = self.conflicts.get((method, path), 0)
        if left:
            self.conflicts[(method, path)] = left - 1
            raise ApiError(409, "Conflict", "Operation cannot be fulfilled: the object has been modified (injected)")
        rv = body.get("metadata", {}).get("resourceVersion")
        if not rv:
            raise ApiError(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")
        if rv != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "Operation cannot be fulfilled: the object has been modified; "
                                            "please apply your changes to the latest version and try again")

    def update(self, plural, ns, name, sub, body, path):
        with self.cond:
            cur = self.objects.get((plural, ns, name))
            if not cur:
                raise ApiError(404, "NotFound", f"{plural} \"{name}\" not found")
            self._check_rv("PUT", path, cur, body)
            new = copy.deepcopy(cur)
            has_status = KINDS[plural][4]
            if sub == "status":
                new["status"] = body.get("status", {})
            else:
                for k, v in body.items():
                    if k not in ("metadata", "status") or (k == "status" and not has_status):
                        new[k] = v
                for k in ("labels", "annotations", "finalizers", "ownerReferences"):
                    if k in body.get("metadata", {}):
                        new["metadata"][k] = body["metadata"][k]
                    else:
                        new["metadata"].pop(k, None)
                if new.get("spec") != cur.get("spec"):
                    new["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
            if KINDS[plural][0] == "lorax.dev":
                try:
                    jsonschema.validate(new, schema_for(KINDS[plural][2], strict=(sub == "status")))
                    # CRD validation ratcheting (GA in 1.33): rules are not re-checked on an unchanged spec, so a
                    # status write to an object stored before a rule existed goes through.
                    unchanged_spec = new.get("spec") == cur.get("spec")
                    check_cel({k: v for k, v in new.items() if k != "spec" or not unchanged_spec},
                              schema_for(KINDS[plural][2], strict=False))
                except jsonschema.ValidationError as e:
                    raise ApiError(422, "Invalid", f"invalid: {e.message}")
            if plural == "deployments":
                canonicalize_resources(new)
            if new == cur:
                return copy.deepcopy(cur)  # like the real server: a no-op update keeps the resourceVersion
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                self._delete_now(plural, new)
                return copy.deepcopy(new)
            self._put(plural, new, "MODIFIED")
            self._after_write(plural, new)
            return copy.deepcopy(new)

    def apply(self, plural, ns, name, body, manager, force):
        with self.cond:
            if not manager:
                raise ApiError(422, "Invalid", "fieldManager is required for apply requests")
            if body.get("metadata", {}).get("name") != name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            key = (plural, ns, name)
            cur = self.objects.get(key)
            applied = {k: v for k, v in body.items() if k != "status"}
            applied["metadata"] = {k: v for k, v in body["metadata"].items()
                                   if k in ("name", "namespace", "labels", "annotations", "ownerReferences")}
            paths = field_paths({k: v for k, v in applied.items() if k not in ("apiVersion", "kind")})
            owners = self.managed.setdefault(key, {})
            if cur is None:
                obj = copy.deepcopy(applied)
                obj["metadata"]["namespace"] = ns
                self._prepare_new(plural, obj)
            else:
                obj = copy.deepcopy(cur)
                conflicts = [p for other, fields in owners.items() if other != manager for p in fields
                             if p in paths and get_path(cur, p) != paths[p]]
                if conflicts and not force:
                    raise ApiError(409, "Conflict", "Apply failed with conflicts: " +
                                   ", ".join(".".join(p) for p in conflicts[:5]))
                for p in owners.get(manager, {}):  # fields this manager no longer applies
                    if p not in paths and not any(p in f for o, f in owners.items() if o != manager):
                        del_path(obj, p)
                for p, v in paths.items():
                    set_path(obj, p, v)
            for other, fields in owners.items():  # forced or equal values: ownership moves/shares
                if other != manager:
                    for p in list(fields):
                        if p in paths and force and get_path(cur or {}, p) != paths[p]:
                            del fields[p]
            owners[manager] = paths
            obj["metadata"]["managedFields"] = [
                {"manager": m, "operation": "Apply", "apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1",
                 "fieldsV1": {".".join(p): {} for p in sorted(f)}} for m, f in sorted(owners.items())]
            if plural == "deployments":
                canonicalize_resources(obj)
            if cur is not None:
                if obj == cur:
                    return copy.deepcopy(cur)
                if obj.get("spec") != cur.get("spec"):
                    obj["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
            self._put(plural, obj, "ADDED" if cur is None else "MODIFIED")
            self._after_write(plural, obj)
            return copy.deepcopy(obj)

    def delete(self, plural, ns, name):
        with self.cond:
            cur = self.objects.get((plural, ns, name))
            if not cur:
                raise ApiError(404, "NotFound", f"{plural} \"{name}\" not found")
            self._delete(plural, cur)
            return {"kind": "Status", "apiVersion": "v1", "status": "Success"}


PATH_RE = re.compile(r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))"
                     r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$")


def scale_paths():
    sc = load_crd("LoraxDeployment")["spec"]["versions"][0]["subresources"]["scale"]
    return {k: tuple(sc[f"{k}ReplicasPath" if k != "selector" else "labelSelectorPath"].lstrip(".").split("."))
            for k in ("spec", "status", "selector")}


def discovery(path, service_monitors=False):
    """Legacy discovery documents (what kubectl reads to map 'ldep' to a resource); the names,
    short names and subresources of our kinds come from the CRD files."""
    groups = {}
    for plural, (g, v, kind, namespaced, has_status) in KINDS.items():
        if g == "monitoring.coreos.com" and not service_monitors:
            continue  # only served when the prometheus-operator CRDs "are installed"
        groups.setdefault(g, {}).setdefault(v, []).append((plural, kind, namespaced, has_status))
    if path == "/version":
        return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{next(iter(vs))}", "version": next(iter(vs))}}
            for g, vs in groups.items() if g]}
    m = re.fullmatch(r"/api/(v1)|/apis/([^/]+)/([^/]+)", path)
    if not m:
        return None
    g, v = ("", "v1") if m[1] else (m[2], m[3])
    if v not in groups.get(g, {}):
        return None
    res = []
    for plural, kind, namespaced, has_status in groups[g][v]:
        entry = {"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
        if g == "lorax.dev":
            names = load_crd(kind)["spec"]["names"]
            entry["shortNames"] = names.get("shortNames", [])
            entry["singularName"] = names["singular"]
        res.append(entry)
        if has_status:
            res.append({"name": f"{plural}/status", "singularName": "", "namespaced": namespaced, "kind": kind,
                        "verbs": ["get", "patch", "update"]})
        if plural == "loraxdeployments":
            res.append({"name": f"{plural}/scale", "singularName": "", "namespaced": True, "kind": "Scale",
                        "group": "autoscaling", "version": "v1", "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{g}/{v}" if g else v, "resources": res}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"

    def log_message(self, *args):
        pass

    @property
    def api(self):
        return self.server.api

    def _send(self, code, body, ctype="application/json"):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode() if n else ""

    def _dispatch(self, method):
        url = urllib.parse.urlparse(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        entry = {"method": method, "path": url.path, "query": q, "token": token, "t": time.monotonic(),
                 "watch": q.get("watch") in ("1", "true")}
        code = 500
        try:
            if self.api.required_token and token != self.api.required_token and token not in self.api.tokens:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if url.path == "/apis/monitoring.coreos.com/v1" and method == "GET":
                if not self.api.store.serve_service_monitors:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                code = 200
                return self._send(200, {"kind": "APIResourceList", "groupVersion": "monitoring.coreos.com/v1",
                                        "resources": [{"name": "servicemonitors", "namespaced": True,
                                                       "kind": "ServiceMonitor"}]})
            disc = discovery(url.path, self.api.store.serve_service_monitors) if method == "GET" else None
            if disc is not None:
                code = 200
                return self._send(200, disc)
            m = PATH_RE.match(url.path)
            if not m or m["plural"] not in KINDS:
                raise ApiError(404, "NotFound", f"no route for {url.path}")
            plural, ns, name, sub = m["plural"], m["ns"] or "", m["name"], m["sub"]
            group, version = KINDS[plural][0], KINDS[plural][1]
            if (m["g"] or "") != group or (m["v"] or m["cv"]) != version:
                raise ApiError(404, "NotFound", f"{url.path}: wrong group/version")
            if sub == "scale" and plural == "loraxdeployments":
                code = 200
                return self._scale(method, ns, name)
            if sub not in (None, "status"):
                raise ApiError(404, "NotFound", f"subresource {sub} not supported")
            if sub == "status" and not KINDS[plural][4]:
                raise ApiError(404, "NotFound", f"{plural} has no status subresource")
            store = self.api.store
            if method == "GET" and name is None and entry["watch"]:
                code = 200
                self.api.log(entry, code)
                return self._watch(plural, ns, q)
            if method == "GET" and name is None:
                with store.cond:
                    items = [copy.deepcopy(o) for (p, n, _), o in sorted(store.objects.items())
                             if p == plural and (not ns or n == ns) and labels_match(o, q.get("labelSelector"))]
                    rv = str(store.rv)
                for i in items:
                    i.pop("apiVersion", None), i.pop("kind", None)  # like the real server's list items
                code = 200
                return self._send(200, {"kind": KINDS[plural][2] + "List",
                                        "apiVersion": f"{group}/{version}" if group else version,
                                        "metadata": {"resourceVersion": rv}, "items": items})
            if method == "GET":
                o = store.get(plural, ns, name)
                if not o:
                    raise ApiError(404, "NotFound", f"{plural} \"{name}\" not found")
                code = 200
                return self._send(200, o)
            raw = self._body()
            if method == "POST" and name is None:
                code = 201
                return self._send(201, store.create(plural, ns, json.loads(raw)))
            if method == "PUT" and name:
                out = store.update(plural, ns, name, sub, json.loads(raw), url.path)
                code = 200
                return self._send(200, out)
            if method == "PATCH" and name:
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if ctype != "application/apply-patch+yaml":
                    raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype}")
                existed = store.get(plural, ns, name) is not None
                out = store.apply(plural, ns, name, yaml.safe_load(raw), q.get("fieldManager"),
                                  q.get("force") == "true")
                # Like the real server: an apply that creates answers 201, and RBAC needs `create` for it.
                entry["created"] = not existed
                code = 200 if existed else 201
                return self._send(code, out)
            if method == "DELETE" and name:
                code = 200
                return self._send(200, store.delete(plural, ns, name))
            raise ApiError(405, "MethodNotAllowed", f"{method} {url.path}")
        except ApiError as e:
            code = e.code
            self._send(e.code, e.status())
        except (ValueError, KeyError, TypeError) as e:
            code = 400
            self._send(400, ApiError(400, "BadRequest", f"bad request: {e!r}").status())
        finally:
            if not entry["watch"]:
                self.api.log(entry, code)

    def _scale(self, method, ns, name):
        """The CRD's scale subresource: autoscaling/v1 Scale over .spec.replicas / .status.replicas /
        .status.selector (the paths crds/loraxdeployment.yaml declares)."""
        store = self.api.store
        paths = scale_paths()
        if method in ("PATCH", "PUT"):
            raw = self._body()
            body = json.loads(raw) if raw else {}
            replicas = body.get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", "spec.replicas must be a non-negative integer")
            with store.cond:
                cur = store.objects.get(("loraxdeployments", ns, name))
                if not cur:
                    raise ApiError(404, "NotFound", f"loraxdeployments \"{name}\" not found")
                rv = body.get("metadata", {}).get("resourceVersion")
                if method == "PUT" and rv and rv != cur["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", "the object has been modified")
                new = copy.deepcopy(cur)
                set_path(new, paths["spec"], replicas)
                check_cel(new, schema_for("LoraxDeployment", strict=False))
                if new != cur:
                    new["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
                    store._put("loraxdeployments", new, "MODIFIED")
        elif method != "GET":
            raise ApiError(405, "MethodNotAllowed", method)
        obj = store.get("loraxdeployments", ns, name)
        if not obj:
            raise ApiError(404, "NotFound", f"loraxdeployments \"{name}\" not found")
        m = obj["metadata"]
        return self._send(200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                                "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                                             "resourceVersion": m["resourceVersion"]},
                                "spec": {"replicas": get_path(obj, paths["spec"]) or 0},
                                "status": {"replicas": get_path(obj, paths["status"]) or 0,
                                           "selector": get_path(obj, paths["selector"]) or ""}})

    def _chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, plural, ns, q):
        store = self.api.store
        rv = int(q.get("resourceVersion") or 0)
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        sel = q.get("labelSelector")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        gen = self.api.watch_generation
        deadline = time.monotonic() + timeout
        last_bookmark = time.monotonic()
        try:
            with store.cond:
                if rv and rv < store.compacted_rv:
                    self._chunk({"type": "ERROR", "object": ApiError(
                        410, "Expired", f"too old resource version: {rv} ({store.compacted_rv})").status()})
                    self.wfile.write(b"0\r\n\r\n")
                    return
            while time.monotonic() < deadline and not self.api.stopping:
                if self.api.watch_generation != gen:  # test dropped the watches: cut the stream mid-way
                    self.connection.shutdown(2)
                    return
                with store.cond:
                    events = [(erv, t, o) for erv, p, t, o in store.history
                              if erv > rv and p == plural and (not ns or o["metadata"].get("namespace") == ns)]
                    cur_rv = store.rv  # read with the events: a bookmark must never skip an event
                    if not events:
                        store.cond.wait(0.1)
                for erv, t, o in events:
                    rv = erv
                    if labels_match(o, sel):
                        self._chunk({"type": t, "object": o})
                if bookmarks and time.monotonic() - last_bookmark >= self.api.bookmark_interval:
                    last_bookmark = time.monotonic()
                    rv = max(rv, cur_rv)
                    group, version, kind = KINDS[plural][:3]
                    self._chunk({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": f"{group}/{version}" if group else version,
                        "metadata": {"resourceVersion": str(rv)}}})
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeApiServer:
    def __init__(self, host="127.0.0.1", bookmark_interval=1.0, tls=None):
        self.store = Store()
        self.requests = []
        self.req_lock = threading.Lock()
        self.watch_generation = 0
        self.bookmark_interval = bookmark_interval
        self.stopping = False
        self.required_token = None
        self.tokens = set()
        self.httpd = _Server((host, 0), Handler)
        self.httpd.api = self
        scheme = "http"
        if tls:  # (certfile, keyfile): serve HTTPS like a real API server
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def log(self, entry, code):
        entry["code"] = code
        with self.req_lock:
            self.requests.append(entry)

    def drop_watches(self):
        self.watch_generation += 1

    def mark(self):
        with self.req_lock:
            return len(self.requests)

    def since(self, mark, token=None):
        with self.req_lock:
            return [r for r in self.requests[mark:] if token is None or r["token"] == token]

    def writes_since(self, mark, token=None, include_leases=False):
        return [r for r in self.since(mark, token) if r["method"] in WRITE_METHODS
                and (include_leases or "/leases" not in r["path"])]

    def write_kubeconfig(self, path, token, ca_pem=None):
        self.tokens.add(token)
        cluster = {"server": self.url}
        if ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "op", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "op", "namespace": "default"}}]}))
        return path

    def stop(self):
        self.stopping = True
        self.httpd.shutdown()
        self.httpd.server_close()


_ids = itertools.count()
