"""The load and the observers: a writer (one INSERT every 20 ms through a multi-host libpq
connection, target_session_attrs=read-write), a monitor (every node's /primary every 100 ms,
counting split-brain observations), a per-node probe (every 50 ms on each node: a tiny INSERT on
that node's own connection, then its /primary), and a watcher of the leader key in etcd."""
import collections
import sys
import threading
import time

import psycopg2

from .cluster import SU_PASSWORD, rest, _Conn

TABLE = "bench_writes"
PROBE_TABLE = "bench_probe"



def _pace(stop, nxt):
    """Waits until `nxt` (or returns at once when late, restarting the schedule from now)."""
    delay = nxt - time.monotonic()
    if delay > 0:
        stop.wait(delay)
        return nxt
    return time.monotonic()


def _close_quietly(conn):
    if conn is not None:
        try:
            conn.close()
        except psycopg2.Error:
            pass

class Writer:
    def __init__(self, nodes, pacing=0.020):
        hosts = ",".join("127.0.0.1" for _ in nodes)
        ports = ",".join(str(n.pg) for n in nodes)
        self.dsn = (f"host={hosts} port={ports} user=postgres password={SU_PASSWORD} "
                    f"dbname=postgres target_session_attrs=read-write connect_timeout=2 "
                    f"options='-c statement_timeout=2000'")
        self.pacing = pacing
        self.lock = threading.Lock()
        self.acks = []  # (id, t_ack, port, t_connection_opened)
        self.next_id = 1
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.thread.join(10)

    def _run(self):
        conn, opened, port = None, 0.0, 0
        nxt = time.monotonic()
        while not self._stop.is_set():
            nxt += self.pacing
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn)
                    conn.autocommit = True
                    opened = time.monotonic()
                    port = int(conn.info.port)
                with self.lock:
                    wid = self.next_id
                    self.next_id += 1
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {TABLE}(id) VALUES (%s)", (wid,))
                t = time.monotonic()
                with self.lock:
                    self.acks.append((wid, t, port, opened))
            except psycopg2.Error as e:
                with self.lock:
                    self.errors += 1
                    self.last_error = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                try:
                    if conn is not None:
                        conn.close()
                except psycopg2.Error:
                    pass
                conn = None
            nxt = _pace(self._stop, nxt)
        _close_quietly(conn)

    def snapshot(self):
        with self.lock:
            return list(self.acks)

    def first_ack_after(self, t, port=None, not_port=None, new_connection=True):
        for wid, ta, p, opened in self.snapshot():
            if ta <= t or (new_connection and opened <= t):
                continue
            if port is not None and p != port:
                continue
            if not_port is not None and p == not_port:
                continue
            return ta
        return None

    def longest_gap(self, t0, t1):
        """Longest interval between consecutive acks overlapping [t0, t1]."""
        times = [a[1] for a in self.snapshot()]
        best, prev = 0.0, None
        for ta in times:
            if prev is not None and ta >= t0 and prev <= t1:
                best = max(best, ta - prev)
            prev = ta
        return best

    def acked_ids_between(self, t0, t1):
        return [a[0] for a in self.snapshot() if t0 <= a[1] <= t1]


class Monitor:
    """Every 100 ms: /primary on every node; an observation of split brain = a round in which
    two or more nodes answered 200."""

    def __init__(self, nodes, interval=0.1):
        self.nodes = nodes
        self.interval = interval
        self.lock = threading.Lock()
        self.rounds = 0
        self.split = []  # (t, [names])
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.thread.join(10)

    def _run(self):
        nxt = time.monotonic()
        while not self._stop.is_set():
            nxt += self.interval
            up = [n.name for n in self.nodes
                  if rest(n.api, "GET", "/primary", timeout=0.5)[0] == 200]
            with self.lock:
                self.rounds += 1
                if len(up) > 1:
                    self.split.append((time.monotonic(), up))
            nxt = _pace(self._stop, nxt)

    def split_between(self, t0, t1):
        with self.lock:
            return [s for s in self.split if t0 <= s[0] <= t1]


class NodeProbe:
    """One thread per node, every `interval` (50 ms): a tiny INSERT on a connection to that node
    alone (no target_session_attrs: the node itself says whether it accepts the write), then
    GET /primary on that node. Each sample is (t, ok, error) for writes and (t, status) for
    /primary, t = the midpoint of the request on the monotonic clock (status 0 = no HTTP answer),
    error = the first line of a refused write's error (interned: the same few texts over and
    over). The two requests of a round follow each other, so they are at most one interval apart.

    "Writable" is an INSERT that commits: it catches a node in recovery, a read-only
    default_transaction_read_only and a postmaster that is shutting down or gone alike."""

    KEEP = 20 * 60 * 20  # per node and kind: the last 20 minutes at 20 samples/s

    def __init__(self, nodes, interval=0.050):
        self.nodes = nodes
        self.interval = interval
        self.lock = threading.Lock()
        self.writes = {n.name: collections.deque(maxlen=self.KEEP) for n in nodes}
        self.primary = {n.name: collections.deque(maxlen=self.KEEP) for n in nodes}
        self.last_error = {}
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), name=f"probe-{n.name}",
                                         daemon=True) for n in nodes]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(10)

    def _connect(self, n):
        c = psycopg2.connect(host="127.0.0.1", port=n.pg, user="postgres", password=SU_PASSWORD,
                             dbname="postgres", connect_timeout=2,
                             options="-c statement_timeout=500 -c synchronous_commit=local")
        c.autocommit = True
        return c

    def _run(self, n):
        conn = None
        nxt = time.monotonic()
        while not self._stop.is_set():
            nxt += self.interval
            ok = False
            err = None
            t1 = time.monotonic()
            try:
                if conn is None:
                    conn = self._connect(n)
                    t1 = time.monotonic()  # the write starts once connected
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {PROBE_TABLE}(node) VALUES (%s)", (n.name,))
                ok = True
            except psycopg2.Error as e:
                err = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                if conn is not None and conn.closed:
                    conn = None
            except Exception as e:  # noqa: BLE001 - keep probing
                err = repr(e)
                try:
                    if conn is not None:
                        conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
            t2 = time.monotonic()
            st = rest(n.api, "GET", "/primary", timeout=0.5)[0]
            t3 = time.monotonic()
            if err is not None:
                err = sys.intern(err[:200])
                self.last_error[n.name] = err
            with self.lock:
                self.writes[n.name].append(((t1 + t2) / 2, ok, err))
                self.primary[n.name].append(((t2 + t3) / 2, st))
            nxt = _pace(self._stop, nxt)
        _close_quietly(conn)

    def samples(self, name, t0, t1=None):
        """(writes, primary) of node `name` with t0 <= t <= t1, oldest first."""
        t1 = time.monotonic() if t1 is None else t1
        with self.lock:
            w = [s for s in self.writes[name] if t0 <= s[0] <= t1]
            p = [s for s in self.primary[name] if t0 <= s[0] <= t1]
        return w, p


class LeaderWatch:
    """Polls the leader key in etcd every 10 ms (directly, not through the counting proxy) and
    records when the key of `old_value` disappears or changes (= its lease expired or it was
    deleted), and when a new value appears."""

    def __init__(self, etcd, key, old_value, interval=0.010):
        self.etcd, self.key, self.old = etcd, key, old_value
        self.interval = interval
        self.gone_at = None
        self.new_at = None
        self.new_value = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="leader-watch", daemon=True)
        self.thread.start()

    def _run(self):
        conn = _Conn(self.etcd.port)
        while not self._stop.is_set():
            try:
                kv = self.etcd.get_key(self.key, conn)
                t = time.monotonic()
                if (kv is None or kv[0] != self.old) and self.gone_at is None:
                    self.gone_at = t
                if kv is not None and kv[0] != self.old and self.new_at is None:
                    self.new_at, self.new_value = t, kv[0]
                    return
            except Exception:
                pass
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self.thread.join(5)
