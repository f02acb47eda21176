"""The repository's own rules, checked on every run (docs/architecture.md):
the layers hold (no module calls one above it, no cycle, read from the
compiled objects by tests/tools/layers.py), the layer table there is the one
the checker uses, product files stay small and say what they own, nothing
points at a file outside the repository, every section sign names its
document, and every link to a docs/ heading finds that heading."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")


def tracked_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.isfile(os.path.join(ROOT, f))]


def text_files():
    skip = (".png", ".jpg", ".ico", ".tgz", ".gz", ".lock")
    for f in tracked_files():
        if f.endswith(skip) or f.startswith("fuzz/seeds/") or f == "package-lock.json" \
                or f.endswith("package-lock.json"):
            continue
        try:
            with open(os.path.join(ROOT, f), encoding="utf-8") as fh:
                yield f, fh.read()
        except UnicodeDecodeError:
            continue


def product_files():
    return sorted(f for f in tracked_files() if "/" not in f and f.endswith((".c", ".h")))


@pytest.mark.skipif(not os.path.isdir(BUILD) or not any(n.endswith(".o") for n in os.listdir(BUILD)),
                    reason="no build/*.o: run make first")
def test_layers_hold_in_the_compiled_objects():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests/tools/layers.py"), BUILD],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 violations" in r.stdout


@pytest.mark.skipif(not os.path.isdir(BUILD) or not any(n.endswith(".o") for n in os.listdir(BUILD)),
                    reason="no build/*.o: run make first")
def test_architecture_doc_shows_the_current_module_graph():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests/tools/layers.py"), BUILD, "--graph"],
                       capture_output=True, text=True)
    doc = open(os.path.join(ROOT, "docs/architecture.md"), encoding="utf-8").read()
    assert r.stdout in doc, ("docs/architecture.md's module graph is not the one the code has now; "
                             "paste the output of tests/tools/layers.py build --graph:\n" + r.stdout)


def test_architecture_doc_draws_the_checked_layers():
    sys.path.insert(0, os.path.join(ROOT, "tests/tools"))
    try:
        import layers
    finally:
        sys.path.pop(0)
    doc = open(os.path.join(ROOT, "docs/architecture.md"), encoding="utf-8").read()
    for name, mods in layers.LAYERS:
        # Each layer is a row of the layer table: | name | `a.c`, `b.c` | ...
        row = [l for l in doc.splitlines() if l.startswith("| %s |" % name)]
        assert row, "docs/architecture.md has no table row for layer %s" % name
        named = set(re.findall(r"`([a-z_0-9]+)\.c`", row[0]))
        assert named == set(mods), "layer %s: doc names %s, checker %s" % (name, sorted(named), sorted(mods))
    every = {m for _, mods in layers.LAYERS for m in mods}
    sources = {f[:-2] for f in product_files() if f.endswith(".c")}
    assert sources == every, "modules not in the layer table: %s; in the table but gone: %s" % (
        sorted(sources - every), sorted(every - sources))


def test_product_files_are_small_and_say_what_they_are():
    for f in product_files():
        text = open(os.path.join(ROOT, f), encoding="utf-8").read()
        n = text.count("\n")
        assert n <= 800, "%s has %d lines (at most 800)" % (f, n)
        assert text.startswith("/* %s - " % f), "%s does not open with '/* %s - what it is'" % (f, f)


def test_nothing_points_outside_the_repository():
    # Assembled from parts so this file does not match itself.
    bad = re.compile("|".join([r"\.\./" + "shared", "DESIGN" + r"\.md", "KAFKA" + "-NOTES", "closing" + " note"]))
    hits = ["%s:%d: %s" % (f, i + 1, line.strip())
            for f, text in text_files()
            for i, line in enumerate(text.splitlines()) if bad.search(line)]
    assert not hits, "\n".join(hits[:20])


def test_every_section_sign_names_its_document():
    # The text before a section sign, comment markers and line breaks folded,
    # must end with the document: "RFC 6455 §5.5", "FIPS 180-4 §6.1", also
    # in lists ("RFC 6455 §5.5, §7.4").
    named = re.compile(r"(RFC \d{3,5}|FIPS 180-4)(,? (§[\d.]+,?|and|or))* $")
    me = os.path.relpath(__file__, ROOT)
    hits = []
    for f, text in text_files():
        if f == me or "§" not in text:
            continue
        flat = re.sub(r"\s*\n\s*(\*(?!/)|#|//|-)?\s*", " ", text)
        for m in re.finditer("§", flat):
            before = flat[max(0, m.start() - 60):m.start()]
            if not named.search(before):
                hits.append("%s: ...%s§%s" % (f, before[-30:], flat[m.start() + 1:m.start() + 8]))
    assert not hits, "\n".join(hits[:20])


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def test_links_to_docs_headings_resolve():
    anchors = {}
    for f in tracked_files():
        if f.startswith("docs/") and f.endswith(".md"):
            text = open(os.path.join(ROOT, f), encoding="utf-8").read()
            found = set()
            for line in text.splitlines():
                m = re.match(r"#+\s+(.*)", line)
                if m:
                    found.add(slug(m.group(1)))
            found |= set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
            anchors[f] = found
    ref = re.compile(r"(docs/[a-z_]+\.md)#([a-z0-9_\-]+)")
    bad = []
    for f, text in text_files():
        for m in ref.finditer(text):
            doc, anchor = m.group(1), m.group(2)
            if doc not in anchors:
                bad.append("%s: %s does not exist" % (f, doc))
            elif anchor not in anchors[doc]:
                bad.append("%s: %s has no heading #%s" % (f, doc, anchor))
    assert not bad, "\n".join(sorted(set(bad))[:30])
