"""A three-node cluster on loopback: one etcd 3.4, per node one PostgreSQL 15 and one daemon
(pgwarden or Patroni), every node driven by the same generated patroni.yml. Each daemon talks to
etcd through its own listener of a counting proxy."""
import base64
import http.client as httpc
import json
import os
import shutil
import signal
import socket
import time

import psycopg2

from . import proc
from .proxy import CountingProxy

PG_BIN = "/usr/lib/postgresql/15/bin"
SU_PASSWORD = "bench-su"

PROFILES = {
    "default": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
    "fast": {"ttl": 20, "loop_wait": 2, "retry_timeout": 4},
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rest(port, method, path, body=None, timeout=2.0):
    """(status, body) or (0, error text)."""
    try:
        c = httpc.HTTPConnection("127.0.0.1", port, timeout=timeout)
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data.decode(errors="replace")
    except (OSError, httpc.HTTPException) as e:
        return 0, str(e)



def wait_until(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except Exception:
            pass
        time.sleep(interval)
    return False


class Etcd:
    def __init__(self, root, log):
        self.port = free_port()
        self.peer = free_port()
        self.dir = os.path.join(root, "etcd")
        os.makedirs(self.dir, exist_ok=True)
        proc.chown_postgres(self.dir)
        os.chmod(self.dir, 0o700)
        self.p = proc.spawn([
            "etcd", "--name", "bench", "--data-dir", os.path.join(self.dir, "data"),
            "--listen-client-urls", f"http://127.0.0.1:{self.port}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.port}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
            "--initial-cluster", f"bench=http://127.0.0.1:{self.peer}",
            "--initial-cluster-state", "new"], log_path=log, cwd=self.dir,
            env={"PATH": "/usr/bin:/bin", "HOME": self.dir})
        if not wait_until(lambda: "true" in _get(self.port, "/health"), 30):
            raise RuntimeError(f"etcd did not become healthy; see {log}")

    def get_key(self, key, conn=None):
        """(value, lease) of a key, None when absent; raises on error."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()})
        c = conn or _Conn(self.port)
        st, data = c.post("/v3/kv/range", body)
        if st != 200:
            raise RuntimeError(f"etcd range: {st}")
        kvs = json.loads(data).get("kvs") or []
        if not kvs:
            return None
        kv = kvs[0]
        return base64.b64decode(kv.get("value", "")).decode(), kv.get("lease", "0")

    def stop(self):
        proc.stop_process(self.p, 30)


class _Conn:
    """A persistent HTTP connection to etcd (reconnects on error)."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def post(self, path, body):
        for _ in range(2):
            try:
                if self.c is None:
                    self.c = httpc.HTTPConnection("127.0.0.1", self.port, timeout=1)
                self.c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, httpc.HTTPException):
                try:
                    self.c.close()
                except Exception:
                    pass
                self.c = None
        raise RuntimeError("etcd unreachable")


def _get(port, path):
    st, body = rest(port, "GET", path)
    return body if st == 200 else ""


class Node:
    def __init__(self, name, root):
        self.name = name
        self.dir = os.path.join(root, name)
        self.api = free_port()
        self.pg = free_port()
        self.config = os.path.join(self.dir, "patroni.yml")
        self.log = os.path.join(self.dir, "daemon.log")
        self.data_dir = os.path.join(self.dir, "data")
        self.p = None  # the daemon's Popen

    def daemon_pid(self):
        return self.p.pid if self.p is not None and proc.alive(self.p.pid) else None

    def postmaster(self):
        return proc.postmaster_pid(self.data_dir)


def patroni_yml(node, scope, dcs_port, profile):
    t = PROFILES[profile]
    return f"""scope: {scope}
name: {node.name}
log:
  level: INFO
etcd3:
  hosts: 127.0.0.1:{dcs_port}
  use_proxies: true   # no topology discovery: keep talking to the counting proxy
restapi:
  listen: 127.0.0.1:{node.api}
  connect_address: 127.0.0.1:{node.api}
bootstrap:
  dcs:
    ttl: {t['ttl']}
    loop_wait: {t['loop_wait']}
    retry_timeout: {t['retry_timeout']}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 50
        shared_buffers: 32MB
      pg_hba:
        - local all all trust
        - host replication replicator 127.0.0.1/32 scram-sha-256
        - host all all 127.0.0.1/32 scram-sha-256
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:{node.pg}
  connect_address: 127.0.0.1:{node.pg}
  data_dir: {node.data_dir}
  bin_dir: {PG_BIN}
  pgpass: {node.dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: {SU_PASSWORD}
    replication:
      username: replicator
      password: bench-repl
    rewind:
      username: rewind_user
      password: bench-rewind
  parameters:
    unix_socket_directories: {node.dir}
"""


class Cluster:
    """daemon: 'pgwarden' or 'patroni'."""

    def __init__(self, daemon, profile, root, pgwarden_bin, size=3):
        self.daemon = daemon
        self.profile = profile
        self.root = root
        self.pgwarden_bin = pgwarden_bin
        self.scope = f"bench-{daemon}-{profile}"
        os.makedirs(root, exist_ok=True)
        self.etcd = Etcd(root, os.path.join(root, "etcd.log"))
        self.nodes = [Node(f"node{i + 1}", root) for i in range(size)]
        self.proxy = CountingProxy(self.etcd.port, [n.name for n in self.nodes])
        for n in self.nodes:
            os.makedirs(n.dir, exist_ok=True)
            with open(n.config, "w") as f:
                f.write(patroni_yml(n, self.scope, self.proxy.ports[n.name], profile))
        proc.chown_postgres(root)
        for n in self.nodes:
            os.chmod(n.dir, 0o700)

    @property
    def ttl(self):
        return PROFILES[self.profile]["ttl"]

    def leader_key(self):
        return f"/service/{self.scope}/leader"

    def argv(self, n):
        if self.daemon == "pgwarden":
            return [self.pgwarden_bin, n.config]
        return ["/usr/bin/patroni", n.config]

    def start(self, n):
        env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": n.dir, "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8"}
        n.p = proc.spawn(self.argv(n), log_path=n.log, cwd=n.dir, env=env)

    def start_all(self):
        for i, n in enumerate(self.nodes):
            self.start(n)
            if i == 0:  # let node1 bootstrap: the others then clone it
                wait_until(lambda: self.node_primary(n), 120, 0.2)

    # ---- probes -------------------------------------------------------------------------
    def node_primary(self, n):
        return rest(n.api, "GET", "/primary", timeout=1)[0] == 200

    def primaries(self):
        return [n for n in self.nodes if self.node_primary(n)]

    def primary(self):
        p = self.primaries()
        return p[0] if len(p) == 1 else None

    def by_name(self, name):
        return next(n for n in self.nodes if n.name == name)

    def by_port(self, port):
        return next((n for n in self.nodes if n.pg == port), None)

    def sql(self, n, query, timeout=3):
        c = psycopg2.connect(host="127.0.0.1", port=n.pg, user="postgres", password=SU_PASSWORD,
                             dbname="postgres", connect_timeout=timeout,
                             options=f"-c statement_timeout={timeout * 1000}")
        try:
            c.autocommit = True
            with c.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else []
        finally:
            c.close()

    def streaming_to(self, primary):
        """Names of members streaming from `primary` (pg_stat_replication, application_name)."""
        try:
            rows = self.sql(primary, "SELECT application_name FROM pg_stat_replication "
                                     "WHERE state = 'streaming'", timeout=1)
        except psycopg2.Error:
            return set()
        return {r[0] for r in rows}

    def healthy(self):
        p = self.primary()
        if p is None:
            return False
        others = {n.name for n in self.nodes if n is not p}
        if not others <= self.streaming_to(p):
            return False
        return all(rest(n.api, "GET", "/replica", timeout=1)[0] == 200
                   for n in self.nodes if n is not p)

    def wait_healthy(self, timeout):
        return wait_until(self.healthy, timeout, 0.25)

    def describe(self):
        out = []
        for n in self.nodes:
            st, body = rest(n.api, "GET", "/patroni", timeout=1)
            try:
                j = json.loads(body) if st else {}
            except ValueError:
                j = {}
            out.append(f"{n.name}: daemon={'up' if n.daemon_pid() else 'down'} "
                       f"/patroni={st} role={j.get('role')} state={j.get('state')} "
                       f"repl={j.get('replication_state')} pm={n.postmaster()}")
        return "; ".join(out)

    # ---- processes ------------------------------------------------------------------------
    def daemon_procs(self, n):
        """The daemon and its helper processes (its descendants that are not PostgreSQL)."""
        pid = n.daemon_pid()
        if pid is None:
            return []
        return [pid] + [d for d in proc.descendants(pid)
                        if proc.comm(d) not in ("postgres", "postmaster") and proc.alive(d)]

    def stop_daemon(self, n, timeout=60):
        if n.p is not None:
            proc.stop_process(n.p, timeout)
            n.p = None

    def kill_daemon(self, n):
        pid = n.daemon_pid()
        if pid:
            proc.kill_pid(pid, signal.SIGKILL)

    def stop(self):
        for n in self.nodes:
            self.stop_daemon(n, 60)
        for n in self.nodes:
            pm = n.postmaster()
            if pm:
                proc.kill_pid(pm, signal.SIGINT)
                if not proc.wait_gone(pm, 30):
                    proc.kill_pid(pm, signal.SIGKILL)
        self.proxy.stop()
        self.etcd.stop()
        # orphaned backends of killed postmasters, anything else left below us: by PID
        for pid in proc.descendants(proc.MYPID):
            if proc.alive(pid) and proc.comm(pid) in ("postgres", "pgwarden", "patroni", "etcd",
                                                       "pg_ctl", "pg_basebackup", "pg_rewind"):
                proc.kill_pid(pid, signal.SIGKILL)
