"""Volume: 3 partitions x 100,000 records (kcat from files) to 3 WebSocket
clients at once. docs/protocol.md#ordering-and-loss: within a partition
every client sees the records it asked for in offset order with no
duplicates; nothing is missing unless the slow-client policy dropped it
(then SLOW_CONSUMER) - with a generous --client-queue/--client-buffer and
clients that read fast it must not. `seq` (docs/protocol.md#seq) is per
channel, +1 per routed record: an unfiltered subscriber of the channel sees
1, 2, 3, ... in delivery order."""
import multiprocessing
import os
import re
import socket
import struct
import subprocess
import tempfile
import time

from wsutil import WS, get_json

PARTS = 3
PER_PART = 100_000
CLIENTS = 3

RE_PART = re.compile(rb'"partition":(\d+)')
RE_OFF = re.compile(rb'"offset":(\d+)')
RE_SEQ = re.compile(rb'"seq":(\d+)')
RE_I = re.compile(rb'"data":\{"p":(\d+),"i":(\d+)\}')


def client_proc(port, conn, total, timeout):
    """A fast reader in its own process: parses frames from big recv()s and
    checks order as it goes. Sends back a summary dict."""
    summary = {"count": 0, "errors": [], "first_error_frames": [], "order": [], "seq_bad": 0,
               "dup_or_gap": 0, "controls": []}
    try:
        c = WS.connect(port, timeout=10)
        c.send_json({"type": "subscribe", "channel": "vol"})
        ack = c.recv_json(10)
        conn.send(("ack", ack))
        sock, buf = c.sock, bytearray(c.buf)
        sock.settimeout(timeout)
        next_off = [0] * PARTS
        next_seq = 1
        count = 0
        deadline = time.monotonic() + timeout
        pos = 0
        while count < total and time.monotonic() < deadline:
            # parse complete frames in buf
            while True:
                if len(buf) - pos < 2:
                    break
                b1 = buf[pos + 1] & 0x7F
                op = buf[pos] & 0x0F
                hl = 2
                if b1 == 126:
                    if len(buf) - pos < 4:
                        break
                    n = struct.unpack_from("!H", buf, pos + 2)[0]
                    hl = 4
                elif b1 == 127:
                    if len(buf) - pos < 10:
                        break
                    n = struct.unpack_from("!Q", buf, pos + 2)[0]
                    hl = 10
                else:
                    n = b1
                if len(buf) - pos < hl + n:
                    break
                payload = bytes(buf[pos + hl:pos + hl + n])
                pos += hl + n
                if op != 1:
                    summary["controls"].append((op, payload[:200]))
                    if op == 8:
                        raise RuntimeError(f"close frame {payload[:100]!r}")
                    continue
                if b'"topic"' not in payload:
                    summary["controls"].append((op, payload[:300]))
                    continue
                p = int(RE_PART.search(payload).group(1))
                off = int(RE_OFF.search(payload).group(1))
                seq = int(RE_SEQ.search(payload).group(1))
                mi = RE_I.search(payload)
                if off != next_off[p]:
                    summary["dup_or_gap"] += 1
                    if len(summary["errors"]) < 10:
                        summary["errors"].append(f"partition {p}: offset {off}, expected {next_off[p]}")
                next_off[p] = off + 1
                if seq != next_seq:
                    summary["seq_bad"] += 1
                    if len(summary["errors"]) < 10:
                        summary["errors"].append(f"seq {seq}, expected {next_seq}")
                next_seq = seq + 1
                if not mi or int(mi.group(1)) != p or int(mi.group(2)) != off:
                    if len(summary["errors"]) < 10:
                        summary["errors"].append(f"payload mismatch at {p}:{off}: {payload[:200]!r}")
                count += 1
            if pos > 1 << 20:
                del buf[:pos]
                pos = 0
            if count >= total:
                break
            try:
                chunk = sock.recv(1 << 20)
            except socket.timeout:
                break
            if not chunk:
                summary["errors"].append("connection closed by kbridge")
                break
            buf += chunk
        summary["count"] = count
        summary["next_off"] = next_off
        c.close()
    except Exception as e:      # report, don't hang the parent
        summary["errors"].append(f"client exception: {e!r}")
    conn.send(("done", summary))
    conn.close()


def test_three_partitions_100k_each_three_clients(mock_kafka, kafka_bridge):
    mk = mock_kafka({"vol": PARTS})
    srv = kafka_bridge(mk, "-t", "vol", "--client-queue", "1000000", "--client-buffer", "1GiB")
    ctx = multiprocessing.get_context("fork")
    procs, pipes = [], []
    total = PARTS * PER_PART
    for i in range(CLIENTS):
        a, b = ctx.Pipe()
        p = ctx.Process(target=client_proc, args=(srv.port, b, total, 150), daemon=True)
        p.start()
        procs.append(p)
        pipes.append(a)
    for a in pipes:
        assert a.poll(15), "client did not subscribe within 15 s"
        what, ack = a.recv()
        assert what == "ack" and ack.get("type") == "ack", ack
    with tempfile.TemporaryDirectory() as d:
        t0 = time.monotonic()
        kcats = []
        for p in range(PARTS):
            path = os.path.join(d, f"p{p}.txt")
            with open(path, "w") as f:
                f.write("".join('{"p":%d,"i":%d}\n' % (p, i) for i in range(PER_PART)))
            kcats.append(subprocess.Popen(
                ["kcat", "-P", "-b", mk.bootstrap, "-t", "vol", "-p", str(p), "-l", path,
                 "-X", "linger.ms=20", "-X", "batch.num.messages=10000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for k in kcats:
            _, err = k.communicate(timeout=120)
            assert k.returncode == 0, err
        t_prod = time.monotonic() - t0
        results = []
        for a in pipes:
            assert a.poll(160), "client process did not finish"
            what, summary = a.recv()
            results.append(summary)
        t_all = time.monotonic() - t0
    for p in procs:
        p.join(5)
    stats = get_json(srv.port, "/stats")
    print(f"produced {total} in {t_prod:.1f}s, all clients done after {t_all:.1f}s, stats={stats}")
    problems = []
    for i, s in enumerate(results):
        if s["count"] != total or s["errors"] or s["dup_or_gap"] or s["seq_bad"]:
            problems.append(f"client {i}: {s['count']}/{total} messages, offsets next={s.get('next_off')}, "
                            f"{s['dup_or_gap']} order breaks, {s['seq_bad']} seq breaks, "
                            f"errors={s['errors']}, controls={s['controls'][:5]}")
        elif s["controls"]:
            problems.append(f"client {i}: unexpected messages {s['controls'][:5]}")
    assert not problems, "\n".join(problems)
    assert stats.get("dropped", 0) == 0, stats
