"""A sequential HTTP latency poller, run as its own process (no GIL shared with the bench's
writer and probe threads, whose switch interval of 5 ms would show up in the latencies).

  python3 latency_probe.py --interval 0.005 --seconds 600 NAME=PORT/PATH ...

Round-robin over the targets, one request at a time, a new TCP connection per request
("Connection: close", as a load balancer's health check does), one request started every
`interval` (no catch-up burst when a request took longer). One line per request on stdout:

  <monotonic start> <name> <latency ms> <HTTP status, 0 = no answer> <error or ->

The monotonic clock is system-wide, so the bench can cut the samples into windows. Exits after
`seconds` or on SIGTERM (flushing its output)."""
import argparse
import signal
import socket
import sys
import time


def one(port, path, timeout):
    s = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench-probe\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        line = data.split(b"\r\n", 1)[0].split()
        if len(line) < 2 or not line[0].startswith(b"HTTP/"):
            return 0, "bad-response"
        return int(line[1]), "-"
    except OSError as e:
        return 0, type(e).__name__
    finally:
        if s is not None:
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=0.005)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("targets", nargs="+", help="NAME=PORT/PATH")
    args = ap.parse_args()
    targets = []
    for t in args.targets:
        name, rest = t.split("=", 1)
        port, path = rest.split("/", 1)
        targets.append((name, int(port), "/" + path))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out = sys.stdout
    end = time.monotonic() + args.seconds
    nxt = time.monotonic()
    i = 0
    try:
        while time.monotonic() < end:
            name, port, path = targets[i % len(targets)]
            i += 1
            t0 = time.monotonic()
            st, err = one(port, path, args.timeout)
            t1 = time.monotonic()
            out.write(f"{t0:.6f} {name} {(t1 - t0) * 1000.0:.3f} {st} {err}\n")
            nxt += args.interval
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()
    finally:
        out.flush()


if __name__ == "__main__":
    main()
