"""Processes: the bench as child subreaper, spawning as the postgres user, reaping orphans,
stopping by PID. Nothing here kills by name."""
import ctypes
import os
import pwd
import signal
import subprocess
import threading
import time

PR_SET_CHILD_SUBREAPER = 36

_spawn_lock = threading.Lock()
_registered = {}  # pid -> Popen: our own children (reaped by Popen itself)
_reaper_stop = threading.Event()
_reaper_thread = None
MYPID = os.getpid()


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def as_user_prefix():
    if os.getuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    return []


def chown_postgres(path):
    if os.getuid() != 0:
        return
    pw = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


def spawn(argv, log_path=None, as_postgres=True, cwd=None, env=None):
    """Starts a long-running process (stdout+stderr to log_path); returns the Popen."""
    cmd = (as_user_prefix() if as_postgres else []) + list(argv)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    with _spawn_lock:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             cwd=cwd, env=env, start_new_session=True)
        _registered[p.pid] = p
    if log_path:
        out.close()
    return p


def run(argv, timeout=60, as_postgres=False, input=None, env=None):
    """Runs a short command to completion (bounded); returns (rc, stdout, stderr)."""
    cmd = (as_user_prefix() if as_postgres else []) + list(argv)
    with _spawn_lock:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             env=env, start_new_session=True)
        _registered[p.pid] = p
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_pid(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=10)
    finally:
        with _spawn_lock:
            _registered.pop(p.pid, None)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def forget(p):
    with _spawn_lock:
        _registered.pop(p.pid, None)


def stat_fields(pid):
    """/proc/<pid>/stat split after the command: index 0 = state (field 3)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid):
    """Runs and is not a zombie (kill(pid, 0) succeeds on a zombie: DESIGN.md)."""
    f = stat_fields(pid)
    return f is not None and f[0] not in ("Z", "X")


def start_time(pid):
    f = stat_fields(pid)
    return int(f[19]) if f else None


def cpu_ticks(pid):
    f = stat_fields(pid)
    return (int(f[11]) + int(f[12])) if f else 0


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(pid):
    out = []
    for p in all_pids():
        f = stat_fields(p)
        if f and int(f[1]) == pid:
            out.append(p)
    return out


def descendants(pid):
    out, todo = [], [pid]
    pids = all_pids()
    parent = {}
    for p in pids:
        f = stat_fields(p)
        if f:
            parent.setdefault(int(f[1]), []).append(p)
    while todo:
        x = todo.pop()
        for c in parent.get(x, []):
            out.append(c)
            todo.append(c)
    return out


def _reap_orphans():
    """Reaps zombie children that we did not spawn (orphans adopted as subreaper)."""
    with _spawn_lock:
        mine = set(_registered)
        for pid in children(MYPID):
            if pid in mine:
                continue  # its Popen reaps it
            f = stat_fields(pid)
            if f and f[0] == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def start_reaper():
    global _reaper_thread

    def loop():
        while not _reaper_stop.wait(0.05):
            try:
                _reap_orphans()
            except Exception:  # never let the reaper die
                pass
    _reaper_thread = threading.Thread(target=loop, name="reaper", daemon=True)
    _reaper_thread.start()


def stop_reaper():
    _reaper_stop.set()
    if _reaper_thread:
        _reaper_thread.join(5)
    _reap_orphans()


def kill_pid(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def stop_process(p, timeout=60):
    """SIGTERM a Popen (or pid), wait bounded, then SIGKILL; reaps it."""
    pid = p.pid if hasattr(p, "pid") else p
    if alive(pid):
        kill_pid(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            kill_pid(pid, signal.SIGKILL)
            wait_gone(pid, 10)
    if hasattr(p, "poll"):
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        forget(p)


def postmaster_pid(data_dir):
    """The postmaster running data_dir, from postmaster.pid, checked against its cmdline."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            pid = int(f.readline().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if data_dir.rstrip("/") not in cmd or not alive(pid):
        return None
    return pid


def kill_leftovers(root_marker=None):
    """Last resort at exit: every live descendant of the bench, by PID (SIGKILL)."""
    for pid in descendants(MYPID):
        if alive(pid):
            kill_pid(pid, signal.SIGKILL)
