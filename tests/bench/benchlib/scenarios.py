"""The measured scenarios. Every wait is bounded; a scenario that times out records None for
its figures and a note."""
import math
import os
import re
import signal
import sys
import threading
import time

from . import proc
from .cluster import rest, wait_until
from .workload import PROBE_TABLE, TABLE, LeaderWatch

# Tunables set by tests/bench/run
SLOW_MB = 256        # size of the bulk table that makes pg_basebackup (reinitialize) take seconds
SLOW_IDLE_S = 5.0    # latency baseline window just before the slow action
WORK_DIR = "/var/tmp"


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _wait_value(fn, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v is not None:
            return v
        time.sleep(interval)
    return None


def create_table(cluster):
    p = cluster.primary()
    cluster.sql(p, f"CREATE TABLE IF NOT EXISTS {TABLE}(id bigint PRIMARY KEY, "
                   f"at timestamptz DEFAULT clock_timestamp())")
    cluster.sql(p, f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE}(node text, "
                   f"at timestamptz DEFAULT clock_timestamp()) WITH (autovacuum_enabled = off)")


def lost_writes(cluster, writer, id_from, t_end):
    """Acknowledged writes (ids >= id_from acked up to t_end) missing on the current primary."""
    acked = {a[0] for a in writer.snapshot() if a[0] >= id_from and a[1] <= t_end}
    if not acked:
        return 0
    p = cluster.primary()
    if p is None:
        return None
    rows = cluster.sql(p, f"SELECT id FROM {TABLE} WHERE id BETWEEN {min(acked)} AND {max(acked)}",
                       timeout=10)
    return len(acked - {r[0] for r in rows})


def _streaming_all(cluster, primary, names):
    return set(names) <= cluster.streaming_to(primary)


def _wait_streaming(cluster, primary, names, t0, timeout, per_node=None):
    """Seconds from t0 until every member of names streams from primary (polled every 50 ms);
    per_node (a dict) receives the seconds at which each one was first seen streaming."""
    seen = {} if per_node is None else per_node

    def check():
        now = cluster.streaming_to(primary)
        t = time.monotonic()
        for n in names:
            if n in now and n not in seen:
                seen[n] = round(t - t0, 3)
        return t if set(names) <= set(seen) else None
    t = _wait_value(check, timeout, 0.05)
    return None if t is None else t - t0


def _finish(cluster, writer, monitor, res, id_from, t0, heal_timeout=240):
    healed = cluster.wait_healthy(heal_timeout)
    t_end = time.monotonic()
    res["healed"] = healed
    if not healed:
        res.setdefault("notes", []).append("cluster not healthy after the scenario: "
                                           + cluster.describe())
    time.sleep(0.5)
    try:
        res["lost_writes"] = lost_writes(cluster, writer, id_from, t_end - 0.5)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        res["lost_writes"] = None
        res.setdefault("notes", []).append(f"lost-write check failed: {e}")
    res["split_brain"] = len(monitor.split_between(t0, time.monotonic()))
    return res


# ---- /primary against "accepts writes", per node ------------------------------------------------
PRIMARY_TOLERANCE_S = 0.1  # one Monitor interval = two NodeProbe intervals (see README.md)


def _final_writable(writes):
    """(first refused write, start of the last run of accepted writes) when the samples end with
    an accepted write that follows a refused one, else (first refused write or None, None)."""
    f = next((s[0] for s in writes if not s[1]), None)
    if f is None or not writes[-1][1]:
        return f, None
    start = None
    for s in reversed(writes):
        if not s[1]:
            break
        start = s[0]
    return f, start


def _error_at(writes, t):
    return next((s[2] for s in writes if s[0] == t and len(s) > 2), None)


def primary_vs_writable(cluster, probe, t0, old, new_side=True, old_side=True):
    """From the NodeProbe samples since t0; call it once the scenario is over and the cluster
    healthy again, so that exactly one node ends with accepted writes.

    new side: N = the node whose writes are accepted at the end, after a refused one since t0
    (for a postmaster crash usually the old primary itself). W = the first write of its final
    run of accepted writes, P = the start of the run of /primary 200 answers that leads up to W
    (bounded by N's first refused write since t0), or the first 200 after W;
    new_200_before_writable_s = W - P: > 0 means /primary said 200 that long before the node
    accepted a write. A daemon that turns 200 exactly when PostgreSQL becomes writable shows up
    to one probe interval (50 ms) here, the time to the next write attempt.

    old side: on `old` (the primary before t0), F = the first refused write after its last
    accepted write before W (a write refused and then accepted again is an interruption, not
    the end of writes); P_last = the last 200 of the run of 200s that goes on after F (up to the
    next accepted write on it), or, when the answer after F is no longer 200, the last 200
    before F. old_200_after_refused_s = P_last - F: > 0 means /primary still said 200 that long
    after the node had refused a write; <= 0: it stopped that long before.
    """
    out = {}
    best = None
    for n in cluster.nodes:
        w, _ = probe.samples(n.name, t0)
        f, wt = _final_writable(w)
        if wt is not None and (best is None or wt < best[2]):
            best = (n, f, wt)
    w_new = best[2] if best else None
    if new_side and best is not None:
        n, f, wt = best
        w, prim = probe.samples(n.name, t0)
        before = [s for s in prim if f < s[0] <= wt]
        start = None
        for t, st in reversed(before):
            if st != 200:
                break
            start = t
        if start is None:
            start = next((t for t, st in prim if t > wt and st == 200), None)
        out["new_primary"] = n.name
        out["new_writable_s"] = wt - t0
        if start is not None:
            out["new_200_before_writable_s"] = wt - start
            out["new_first_200_s"] = start - t0
            # proven by the samples alone: a 200 answered before a write that was then refused
            refused = [s[0] for s in w if not s[1] and s[0] < wt]
            if refused:
                out["new_200_while_refused_s"] = max(0.0, refused[-1] - start)
    if old_side and old is not None:
        w, prim = probe.samples(old.name, t0 - 1.0)
        s_last = None
        for s in w:
            if s[1] and (w_new is None or s[0] < w_new):
                s_last = s[0]
        f = next((s[0] for s in w if not s[1] and (s_last is None or s[0] > s_last)), None)
        if f is not None:
            w2 = next((s[0] for s in w if s[1] and s[0] > f), None)
            last = None
            for t, st in prim:
                if t <= f:
                    continue
                if st != 200 or (w2 is not None and t >= w2):
                    break
                last = t
            if last is None:
                last = max((t for t, st in prim if t <= f and st == 200), default=None)
            out["old_refused_s"] = f - t0
            out["old_refused_error"] = _error_at(w, f)
            out["old_interruptions"] = sum(1 for a, b in zip(w, w[1:]) if not a[1] and b[1]
                                           and b[0] <= (s_last or 0))
            if last is not None:
                out["old_200_after_refused_s"] = last - f
                out["old_last_200_s"] = last - t0
    return out


def switchover(cluster, writer, monitor, probe):
    p = cluster.primary()
    cand = next(n for n in cluster.nodes if n is not p)
    others = [n.name for n in cluster.nodes if n is not cand]
    res = {"from": p.name, "to": cand.name}
    id_from = writer.next_id
    reply = {}

    def post():
        reply["r"] = rest(p.api, "POST", "/switchover", {"leader": p.name, "candidate": cand.name},
                          timeout=90)
        reply["t"] = time.monotonic()
    th = threading.Thread(target=post, daemon=True)
    t0 = time.monotonic()
    th.start()
    t_w = _wait_value(lambda: writer.first_ack_after(t0, port=cand.pg), 120)
    res["stream_by_node"] = {}
    res["stream_s"] = _wait_streaming(cluster, cand, others, t0, 120, res["stream_by_node"])
    th.join(95)
    res["rest_status"] = reply.get("r", (None, ""))[0]
    res["rest_s"] = reply["t"] - t0 if "t" in reply else None
    res["window_s"] = None if t_w is None else t_w - t0
    res["gap_s"] = writer.longest_gap(t0, t_w or time.monotonic())
    _finish(cluster, writer, monitor, res, id_from, t0)
    res.update(primary_vs_writable(cluster, probe, t0, p))
    return res


def postmaster_crash(cluster, writer, monitor, probe):
    p = cluster.primary()
    pm = p.postmaster()
    res = {"node": p.name}
    id_from = writer.next_id
    t0 = time.monotonic()
    proc.kill_pid(pm, signal.SIGKILL)
    t_w = _wait_value(lambda: writer.first_ack_after(t0), 180)
    res["window_s"] = None if t_w is None else t_w - t0
    if t_w is not None:
        a = next(a for a in writer.snapshot() if a[1] == t_w)
        by = cluster.by_port(a[2])
        res["writable_on"] = by.name if by else str(a[2])
    _finish(cluster, writer, monitor, res, id_from, t0)
    res.update(primary_vs_writable(cluster, probe, t0, p))
    return res


def _rejoin(cluster, node, res, key):
    """Starts node's daemon again; seconds until the (new) primary streams to it."""
    t1 = time.monotonic()
    cluster.start(node)
    new_p = cluster.primary() or _wait_value(cluster.primary, 30, 0.2)
    if new_p is None:
        res[key] = None
        return
    res[key] = _wait_streaming(cluster, new_p, [node.name], t1, 240)


def node_crash(cluster, writer, monitor, probe):
    p = cluster.primary()
    res = {"node": p.name}
    id_from = writer.next_id
    pm = p.postmaster()
    daemon = p.daemon_pid()
    watch = LeaderWatch(cluster.etcd, cluster.leader_key(), p.name)
    time.sleep(0.1)
    t0 = time.monotonic()
    for pid in (daemon, pm):
        if pid:
            proc.kill_pid(pid, signal.SIGKILL)
    t_w = _wait_value(lambda: writer.first_ack_after(t0, not_port=p.pg), cluster.ttl + 120)
    _wait_value(lambda: watch.gone_at, 5)
    watch.stop()
    if p.p is not None:
        try:
            p.p.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        proc.forget(p.p)
        p.p = None
    proc.wait_gone(pm, 10) if pm else None
    res["total_s"] = None if t_w is None else t_w - t0
    res["lease_wait_s"] = None if watch.gone_at is None else watch.gone_at - t0
    res["after_expiry_s"] = (None if (t_w is None or watch.gone_at is None)
                             else t_w - watch.gone_at)
    res["new_leader_key_s"] = None if watch.new_at is None else watch.new_at - t0
    res["gap_s"] = writer.longest_gap(t0, t_w or time.monotonic())
    _rejoin(cluster, p, res, "rejoin_s")
    _finish(cluster, writer, monitor, res, id_from, t0)
    # the old primary's daemon and PostgreSQL die together: only the new side applies
    res.update(primary_vs_writable(cluster, probe, t0, p, old_side=False))
    return res


def graceful_stop(cluster, writer, monitor, probe):
    p = cluster.primary()
    res = {"node": p.name}
    id_from = writer.next_id
    t0 = time.monotonic()
    proc.kill_pid(p.daemon_pid(), signal.SIGTERM)
    t_w = _wait_value(lambda: writer.first_ack_after(t0, not_port=p.pg), 180)
    res["window_s"] = None if t_w is None else t_w - t0
    res["gap_s"] = writer.longest_gap(t0, t_w or time.monotonic())
    try:
        p.p.wait(timeout=120)
        res["exit_code"] = p.p.returncode
        res["exit_s"] = time.monotonic() - t0
    except Exception:  # noqa: BLE001
        res.setdefault("notes", []).append("daemon did not exit within 120 s of SIGTERM")
    cluster.stop_daemon(p, 30)
    pm = p.postmaster()
    if pm:  # the daemon left PostgreSQL running: stop it, as an operator would before a restart
        res.setdefault("notes", []).append("PostgreSQL still ran after the daemon exited")
    _rejoin(cluster, p, res, "rejoin_s")
    _finish(cluster, writer, monitor, res, id_from, t0)
    res.update(primary_vs_writable(cluster, probe, t0, p))
    return res


# ---- REST latency while the HA loop runs a slow action ------------------------------------------
def _bulk_table(cluster, p, mb):
    """A table of `mb` MB on disk (fillfactor 10: one ~600-byte row per 8 kB page, so little
    WAL), autovacuum off (no later hint-bit/visibility WAL), then CHECKPOINT: pg_basebackup's
    spread checkpoint then has few dirty buffers (it sleeps 100 ms after each one)."""
    pages = mb * 128
    cluster.sql(p, "CREATE TABLE IF NOT EXISTS bench_bulk(id int, pad text) "
                   "WITH (fillfactor = 10, autovacuum_enabled = off)")
    # its size, not count(*): a first read would set hint bits, and with data checksums log a
    # full-page image of every page
    have = cluster.sql(p, "SELECT pg_relation_size('bench_bulk') / 8192")[0][0]
    if have < pages:
        cluster.sql(p, f"INSERT INTO bench_bulk SELECT g, repeat('x', 600) "
                       f"FROM generate_series({have + 1}, {pages}) g", timeout=300)
    cluster.sql(p, "CHECKPOINT", timeout=300)
    return cluster.sql(p, "SELECT pg_total_relation_size('bench_bulk')")[0][0] / 1048576.0


def _caught_up(cluster, p, lsn):
    """Every replica has replayed up to `lsn` (text)."""
    rows = cluster.sql(p, f"SELECT count(*) FILTER (WHERE replay_lsn >= '{lsn}'::pg_lsn) "
                          f"FROM pg_stat_replication", timeout=2)
    return rows[0][0] >= len(cluster.nodes) - 1


def _pct(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(q * len(sorted_vals)) - 1)]


def _latency_stats(samples, expect_200):
    """samples: [(latency_ms, status)]; errors = no HTTP answer, or not 200 where 200 is due."""
    lat = sorted(x[0] for x in samples)
    errors = sum(1 for _, st in samples if st == 0 or (expect_200 and st != 200))
    codes = {}
    for _, st in samples:
        codes[str(st)] = codes.get(str(st), 0) + 1
    return {"n": len(lat), "p50_ms": _pct(lat, 0.50), "p99_ms": _pct(lat, 0.99),
            "max_ms": lat[-1] if lat else None, "errors": errors, "status": codes}


SLOW_TARGETS = (("replica /health", "replica", "/health", False),
                ("replica /patroni", "replica", "/patroni", True),
                ("leader /primary", "leader", "/primary", True))


def slow_action(cluster, writer, monitor, probe):
    """POST /reinitialize on a replica (both daemons run it in the background: stop PostgreSQL,
    empty the data directory, pg_basebackup from the leader, start): a latency poller (its own
    process, a new connection per request, one request every 5 ms round-robin) on that
    replica's /health and /patroni and the leader's /primary, SLOW_IDLE_S seconds before the
    request (idle) and from the request until the replica streams again (slow)."""
    p = cluster.primary()
    r = next(n for n in reversed(cluster.nodes) if n is not p)
    res = {"node": r.name, "leader": p.name}
    id_from = writer.next_id
    t_b = time.monotonic()
    res["bulk_mb"] = _bulk_table(cluster, p, SLOW_MB)
    res["bulk_s"] = time.monotonic() - t_b
    lsn = cluster.sql(p, "SELECT pg_current_wal_lsn()::text")[0][0]
    if not wait_until(lambda: _caught_up(cluster, p, lsn), 180, 0.2):
        res.setdefault("notes", []).append("replicas did not replay the bulk table within 180 s")
    cluster.sql(p, "CHECKPOINT", timeout=120)
    pm0 = r.postmaster()
    out = os.path.join(WORK_DIR, f"latency-{cluster.daemon}-{cluster.profile}-{r.name}-"
                                 f"{int(time.time())}.txt")
    targets = [f"{label.replace(' ', '_')}={(r if who == 'replica' else p).api}{path}"
               for label, who, path, _ in SLOW_TARGETS]
    poller = proc.spawn([sys.executable, os.path.join(os.path.dirname(__file__), "latency_probe.py"),
                         "--interval", "0.005", "--seconds", "600"] + targets,
                        log_path=out, as_postgres=False)
    t0 = None
    try:
        time.sleep(0.5)  # the poller's interpreter starts
        t_idle = time.monotonic()
        time.sleep(SLOW_IDLE_S)
        t0 = time.monotonic()
        st, body = rest(r.api, "POST", "/reinitialize", {}, timeout=10)
        res["post_status"], res["post_reply"] = st, body.strip()[:120]
        if st != 200:
            res.setdefault("notes", []).append(f"POST /reinitialize: {st} {body.strip()[:200]}")
        else:
            seen = {}

            def done():
                pm = r.postmaster()
                if pm != pm0 and "down" not in seen:
                    seen["down"] = time.monotonic()
                if pm is None or pm == pm0:
                    return None
                return time.monotonic() if r.name in cluster.streaming_to(p) else None
            t_done = _wait_value(done, 300, 0.05)
            if t_done is None:
                res.setdefault("notes", []).append("replica not streaming again within 300 s "
                                                   "of POST /reinitialize")
                t_done = time.monotonic()
            else:
                res["action_s"] = t_done - t0
            if "down" in seen:
                res["pg_down_s"] = seen["down"] - t0
    finally:
        proc.stop_process(poller, 10)
    if t0 is not None and res.get("post_status") == 200:
        samples = []
        with open(out) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4:
                    samples.append((float(parts[0]), parts[1], float(parts[2]), int(parts[3])))
        for label, _, _, expect_200 in SLOW_TARGETS:
            key = label.replace(" ", "_")
            idle = [(x[2], x[3]) for x in samples if x[1] == key and t_idle <= x[0] < t0]
            slow = [(x[2], x[3]) for x in samples if x[1] == key and t0 <= x[0] <= t_done]
            res[f"idle {label}"] = _latency_stats(idle, expect_200)
            res[f"slow {label}"] = _latency_stats(slow, expect_200)
        try:
            os.unlink(out)
        except OSError:
            pass
    return _finish(cluster, writer, monitor, res, id_from, t0 or time.monotonic())


SCENARIOS = [("switchover", switchover), ("postmaster_crash", postmaster_crash),
             ("node_crash", node_crash), ("graceful_stop", graceful_stop),
             ("slow_action", slow_action)]


# ---- idle footprint and DCS traffic ----------------------------------------------------------
def idle_footprint(cluster, seconds):
    tick = os.sysconf("SC_CLK_TCK")
    procs = {n.name: cluster.daemon_procs(n) for n in cluster.nodes}
    cpu0 = {k: sum(proc.cpu_ticks(p) for p in v) for k, v in procs.items()}
    req0, conn0 = cluster.proxy.snapshot()
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    procs2 = {n.name: cluster.daemon_procs(n) for n in cluster.nodes}
    cpu1 = {k: sum(proc.cpu_ticks(p) for p in procs.get(k, []) if p in procs2[k])
            for k in procs2}
    req1, conn1 = cluster.proxy.snapshot()
    out = {"seconds": dt, "nodes": {}}
    for n in cluster.nodes:
        k = n.name
        r0, r1 = req0.get(k, {}), req1.get(k, {})
        paths = {p: r1.get(p, 0) - r0.get(p, 0) for p in r1 if r1.get(p, 0) - r0.get(p, 0)}
        out["nodes"][k] = {
            "pids": procs2[k],
            "comms": [proc.comm(p) for p in procs2[k]],
            "rss_mb": sum(proc.rss_kb(p) for p in procs2[k]) / 1024.0,
            "cpu_s_per_min": (cpu1[k] - cpu0[k]) / tick * 60.0 / dt,
            "dcs_req_per_min": sum(paths.values()) * 60.0 / dt,
            "dcs_conn_per_min": (conn1.get(k, 0) - conn0.get(k, 0)) * 60.0 / dt,
            "dcs_paths": paths,
            "role": "primary" if cluster.node_primary(n) else "replica",
        }
    return out


# ---- REST API with wrk -----------------------------------------------------------------------
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


WRK_THREADS = 1  # tests/bench/run --wrk-threads; see README.md (2 cores: one for wrk, one for the daemon)


def wrk(port, path, close, seconds, connections=16, threads=None):
    threads = WRK_THREADS if threads is None else threads
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    rc, out, err = proc.run(argv, timeout=seconds + 30)
    res = {"rc": rc}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)
        res[f"p{q}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = m.group(1).strip() if m else ""
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else None
    if res["rps"] is None:
        res["output"] = (out + err)[-500:]
    return res


def rest_bench(cluster, seconds):
    p = cluster.primary()
    r = next(n for n in cluster.nodes if n is not p)
    out = {}
    for label, node, path in (("/primary (leader)", p, "/primary"),
                              ("/replica (replica)", r, "/replica"),
                              ("/health (leader)", p, "/health")):
        for close in (False, True):
            key = f"{label} {'new connection' if close else 'keep-alive'}"
            tick = os.sysconf("SC_CLK_TCK")
            pids = cluster.daemon_procs(node)
            c0, w0 = sum(proc.cpu_ticks(x) for x in pids), time.monotonic()
            out[key] = wrk(node.api, path, close, seconds)
            # CPU of the daemon (and helpers) during the wrk run, in cores: ~1.0 = saturated
            out[key]["daemon_cores"] = ((sum(proc.cpu_ticks(x) for x in pids) - c0) / tick
                                        / (time.monotonic() - w0))
            log(f"  wrk {key}: {out[key].get('rps')} req/s p50 {out[key].get('p50_ms')} ms "
                f"p99 {out[key].get('p99_ms')} ms non-2xx {out[key].get('non2xx')} "
                f"daemon {out[key]['daemon_cores']:.2f} cores "
                f"{out[key].get('socket_errors')}")
    return out
