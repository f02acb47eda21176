#!/usr/bin/env python3
"""layers.py - kbridge's module graph, read from the compiled objects, checked
against the layers of docs/architecture.md.

usage: layers.py [BUILD_DIR] [--graph]
  BUILD_DIR  folder with the product's .o files (default: build)
  --graph    print every module with the modules it calls, by layer

A module "calls" another when its object file has an undefined symbol that the
other defines (nm). Exit status 0 when every call goes to the same layer or a
lower one and no modules call each other in a cycle; 1 otherwise, with one line
per violation. The layer table below is the one docs/architecture.md draws:
keep them the same.
"""
import collections
import glob
import os
import subprocess
import sys

# Top to bottom. A module may call modules of its own layer (without a cycle)
# and of any layer below it.
LAYERS = [
    ("program", ["kbridge", "workers"]),
    ("server", ["server"]),
    ("session", ["session", "session_sse", "session_post", "answer"]),
    ("protocol", ["proto", "proto_query", "proto_sse", "proto_publish", "auth"]),
    ("routing", ["hub", "envelope", "lvc", "history", "state", "stateview", "position", "ssesets"]),
    ("kafka", ["kafka", "assign", "replay", "demo", "publish"]),
    ("client", ["client", "conflate"]),
    ("observability", ["endpoints", "openapi", "openapi_schemas", "asyncapi", "metrics", "fleet"]),
    ("leaves", ["config", "route", "filter", "frame", "http", "ws", "json", "json_parse", "msgpack",
                "statediff", "utf8", "sha1", "base64", "map", "tp", "clock", "log", "assets", "healthcheck",
                "cors", "jwt", "jwks", "iplimit", "tls", "pmd", "sse"]),
]


def read_graph(build):
    objs = sorted(glob.glob(os.path.join(build, "*.o")))
    if not objs:
        sys.exit("layers: no .o files in %s (build first)" % build)
    defs, uses = {}, collections.defaultdict(set)
    for o in objs:
        mod = os.path.basename(o)[:-2]
        out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBRC":
                defs[p[2]] = mod
            elif len(p) == 2 and p[0] == "U":
                uses[mod].add(p[1])
    mods = [os.path.basename(o)[:-2] for o in objs]
    edges = collections.defaultdict(lambda: collections.defaultdict(set))
    for m, syms in uses.items():
        for s in syms:
            d = defs.get(s)
            if d and d != m:
                edges[m][d].add(s)
    return mods, edges


def cycles(mods, edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    mods, edges = read_graph(args[0] if args else "build")
    rank = {m: i for i, (_, ms) in enumerate(LAYERS) for m in ms}
    bad = []
    for m in mods:
        if m not in rank:
            bad.append("module %s is in no layer: add it to docs/architecture.md and tests/tools/layers.py" % m)
    for m in sorted(edges):
        for d in sorted(edges[m]):
            if m in rank and d in rank and rank[d] < rank[m]:
                bad.append("%s (%s) calls up into %s (%s): %s" % (
                    m, LAYERS[rank[m]][0], d, LAYERS[rank[d]][0], ", ".join(sorted(edges[m][d])[:5])))
    for comp in cycles(mods, edges):
        bad.append("cycle: " + " ".join(comp))
    nedges = sum(len(v) for v in edges.values())
    if "--graph" in sys.argv:
        for name, ms in LAYERS:
            print("%s:" % name)
            for m in ms:
                if m in mods:
                    print("  %-11s -> %s" % (m, " ".join(sorted(edges[m])) or "(nothing)"))
    for b in bad:
        print("layers: " + b)
    print("layers: %d modules, %d calls between modules, %d violations" % (len(mods), nedges, len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
