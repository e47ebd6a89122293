"""The measured scenarios. Every wait is bounded; a scenario that times out records None for
its figures and a note."""
import os
import re
import signal
import threading
import time

from . import proc
from .cluster import rest, wait_until
from .workload import TABLE, LeaderWatch


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


def switchover(cluster, writer, monitor):
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
    return _finish(cluster, writer, monitor, res, id_from, t0)


def postmaster_crash(cluster, writer, monitor):
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
    return _finish(cluster, writer, monitor, res, id_from, t0)


def _rejoin(cluster, node, res, key):
    """Starts node's daemon again; seconds until the (new) primary streams to it."""
    t1 = time.monotonic()
    cluster.start(node)
    new_p = cluster.primary() or _wait_value(cluster.primary, 30, 0.2)
    if new_p is None:
        res[key] = None
        return
    res[key] = _wait_streaming(cluster, new_p, [node.name], t1, 240)


def node_crash(cluster, writer, monitor):
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
    return _finish(cluster, writer, monitor, res, id_from, t0)


def graceful_stop(cluster, writer, monitor):
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
    return _finish(cluster, writer, monitor, res, id_from, t0)


SCENARIOS = [("switchover", switchover), ("postmaster_crash", postmaster_crash),
             ("node_crash", node_crash), ("graceful_stop", graceful_stop)]


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


def wrk(port, path, close, seconds, connections=16, threads=2):
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
            out[key] = wrk(node.api, path, close, seconds)
            log(f"  wrk {key}: {out[key].get('rps')} req/s p50 {out[key].get('p50_ms')} ms "
                f"p99 {out[key].get('p99_ms')} ms non-2xx {out[key].get('non2xx')} "
                f"{out[key].get('socket_errors')}")
    return out
