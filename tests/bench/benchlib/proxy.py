"""A counting TCP proxy on loopback between each daemon and etcd: one selector thread, bounded
buffers. It counts HTTP requests (request lines in the client->server stream) by path, and the
TCP connections opened."""
import collections
import re
import selectors
import socket
import threading

REQ = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD) (/[^ \r\n]*) HTTP/1\.[01]\r\n")
BUF_MAX = 1 << 20


class CountingProxy:
    def __init__(self, upstream_port, names):
        """names: one label per listener; self.ports[name] is its listening port."""
        self.upstream = ("127.0.0.1", upstream_port)
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.requests = collections.defaultdict(collections.Counter)  # name -> path -> n
        self.connections = collections.Counter()
        self.ports = {}
        self._tails = {}
        for name in names:
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", 0))
            ls.listen(64)
            ls.setblocking(False)
            self.ports[name] = ls.getsockname()[1]
            self.sel.register(ls, selectors.EVENT_READ, ("listen", name))
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="dcs-proxy", daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return ({n: dict(c) for n, c in self.requests.items()}, dict(self.connections))

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            try:
                key.fileobj.close()
            except OSError:
                pass

    def _close_pair(self, a, b):
        for s in (a, b):
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            try:
                s.close()
            except OSError:
                pass

    def _loop(self):
        while not self._stop.is_set():
            for key, _ in self.sel.select(timeout=0.2):
                kind = key.data[0]
                if kind == "listen":
                    name = key.data[1]
                    try:
                        c, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    try:
                        u = socket.create_connection(self.upstream, timeout=2)
                    except OSError:
                        c.close()
                        continue
                    for s in (c, u):
                        s.setblocking(False)
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._tails[c] = b""
                    self.sel.register(c, selectors.EVENT_READ, ("c2u", name, u))
                    self.sel.register(u, selectors.EVENT_READ, ("u2c", name, c))
                    with self.lock:
                        self.connections[name] += 1
                    continue
                _, name, peer = key.data
                src = key.fileobj
                try:
                    data = src.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._tails.pop(src, None)
                    self._tails.pop(peer, None)
                    self._close_pair(src, peer)
                    continue
                if kind == "c2u":
                    buf = self._tails.get(src, b"") + data
                    paths = REQ.findall(buf)
                    last = buf.rfind(b"\r\n")
                    self._tails[src] = buf[last + 2:][-512:] if last >= 0 else buf[-512:]
                    if paths:
                        with self.lock:
                            for p in paths:
                                self.requests[name][p.split(b"?")[0].decode()] += 1
                try:
                    peer.setblocking(True)
                    peer.settimeout(5)
                    peer.sendall(data[:BUF_MAX] if len(data) <= BUF_MAX else data)
                    peer.setblocking(False)
                except OSError:
                    self._close_pair(src, peer)
