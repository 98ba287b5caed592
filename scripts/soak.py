#!/usr/bin/env python3
"""Helpers of scripts/soak.sh: goaround's resources, the control socket, and the clients
that are not wrk (idle, slow and malformed). Standard library only.

  soak.py sample PID PORT BACKEND_PORT...
      one line: rss_kib threads fds listen clients backend other
      (descriptors by kind: listeners and connections of the client PORT, connections to a
      BACKEND_PORT, everything else: metrics, control socket, epoll, pipes, log files...)
  soak.py control SOCKET LINE
      sends LINE to the control socket, prints the reply
  soak.py serve
      reads "sample ..." and "control ..." commands (the arguments above) on stdin and
      answers each with its output and a line "."; soak.sh keeps one running as a coprocess,
      because starting python takes a second when wrk keeps every core busy
  soak.py clients HOST:PORT OUT [--idle N] [--slow N] [--bad-rate R]
      runs the clients until SIGTERM, then writes "name count" lines to OUT

Clients:
  idle      N keep-alive connections, each makes one GET / and then waits. One the server
            closes (-idle-timeout) is opened again, with a new request.
  slow      N/2 send "GET /" one byte a second (SLOW_BYTE_EVERY): with the default
            -header-timeout they are expected to get 408; N/2 ask for /bytes/262144 with a
            4 KiB receive buffer and read it at 16 KiB/s. Each starts over when done.
  malformed R requests a second, each on its own connection, taken in turn from CASES; each
            must get a 4xx or a close (never a 5xx, never silence for HANG_AFTER).
"""

import json
import os
import resource
import select
import selectors
import signal
import socket
import sys
import threading
import time

HANG_AFTER = 15.0  # longer than goaround's default -header-timeout (10s)
SLOW_BYTE_EVERY = 1.0
SLOW_READ_SIZE = 262144
SLOW_READ_RATE = 16384  # bytes a second
SLOW_READ_PIECE = 1024

GET = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"

# (name, bytes, whether answering it is allowed). RFC 9112 §2.2 lets a recipient accept a
# bare LF as a line end and §5.2 lets a server replace obs-fold with spaces: for those, a 2xx
# is correct too. Everything else must be refused (4xx) or closed.
CASES = [
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: soak\n\n", True),
    ("header line without colon", b"GET / HTTP/1.1\r\nHost: soak\r\nno colon\r\n\r\n", False),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : soak\r\n\r\n", False),
    ("100 KB header", b"GET / HTTP/1.1\r\nHost: soak\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
     False),
    ("Content-Length and Transfer-Encoding",
     b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
    ("Content-Length not a number",
     b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: abc\r\n\r\n", False),
    ("bad chunk size",
     b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", False),
    ("binary junk", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", False),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: soak\r\nX-A: a\x00b\r\n\r\n", False),
    ("request line without target", b"GET\r\n\r\n", False),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: soak\r\nX-A: b\r\n folded\r\n\r\n", True),
]


def sample(pid, port, backend_ports, out=sys.stdout):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    rss, threads = int(fields["VmRSS"][0]), int(fields["Threads"][0])
    sockets, fds = {}, 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed while we looked
            continue
        fds += 1
        if target.startswith("socket:["):
            inode = int(target[8:-1])
            sockets[inode] = sockets.get(inode, 0) + 1
    listen = clients = backend = 0
    seen = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
            n = sockets.get(inode, 0)
            if not n or inode in seen:
                continue
            seen.add(inode)
            local_port = int(local.rsplit(":", 1)[1], 16)
            remote_port = int(remote.rsplit(":", 1)[1], 16)
            if local_port == port and state == "0A":  # LISTEN
                listen += n
            elif local_port == port:
                clients += n
            elif remote_port in backend_ports:
                backend += n
    other = fds - listen - clients - backend
    print(rss, threads, fds, listen, clients, backend, other, file=out)


def control(path, line, out=sys.stdout):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(line.encode() + b"\n")
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    text = reply.decode(errors="replace")
    out.write(text if text.endswith("\n") or not text else text + "\n")


def serve():
    for line in sys.stdin:
        words = line.split(" ", 2)
        try:
            if words[0] == "sample":
                args = line.split()
                sample(int(args[1]), int(args[2]), {int(p) for p in args[3:]})
            elif words[0] == "control" and len(words) == 3:
                control(words[1], words[2].rstrip("\n"))
            else:
                print(f"error: unknown command {line.strip()!r}")
        except OSError as e:
            print(f"error: {e}")
        print(".", flush=True)


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.notes = []

    def add(self, name, n=1):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def note(self, text):
        """Something that makes the run fail, kept for the report (the first few)."""
        with self.lock:
            if len(self.notes) < 20:
                self.notes.append(text)


def read_head(s, deadline):
    """The status of the response on `s`, "close" if the server closed (or reset) first, or
    "hang" at the deadline. Returns (outcome, head bytes, bytes read after the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return "hang", b"", b""
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return "hang", b"", b""
        except (ConnectionResetError, BrokenPipeError):
            return "close", b"", b""
        if not chunk:
            return "close", b"", b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return "garbage", head, rest
    return status, head, rest


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def read_response(s, timeout=HANG_AFTER):
    """Reads one whole response (Content-Length framed); returns its status or the outcome."""
    deadline = time.monotonic() + timeout
    status, head, rest = read_head(s, deadline)
    if not isinstance(status, int):
        return status
    missing = content_length(head) - len(rest)
    while missing > 0:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(min(missing, 65536))
        except (socket.timeout, OSError):
            return "cut"
        if not chunk:
            return "cut"
        missing -= len(chunk)
    return status


def idle_clients(addr, n, stop, counts):
    sel = selectors.DefaultSelector()

    def open_one():
        try:
            s = socket.create_connection(addr, timeout=HANG_AFTER)
            s.sendall(GET)
            status = read_response(s)
        except OSError as e:
            counts.add("idle connect errors")
            counts.note(f"idle client: {e}")
            return
        counts.add(f"idle answered {status}")
        if status != 200:
            counts.note(f"idle client: answered {status}")
            s.close()
            return
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)

    for _ in range(n):
        if stop.is_set():
            break
        open_one()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            sel.unregister(s)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            counts.add("idle closed by server" if not data else "idle unexpected bytes")
            s.close()
            open_one()
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def slow_writer(addr, stop, counts):
    while not stop.is_set():
        try:
            s = socket.create_connection(addr, timeout=HANG_AFTER)
        except OSError as e:
            counts.add("slow writer connect errors")
            counts.note(f"slow writer: {e}")
            stop.wait(1)
            continue
        with s:
            for byte in GET:
                # Stop sending once goaround answered (408) or closed.
                if stop.wait(SLOW_BYTE_EVERY) or select.select([s], [], [], 0)[0]:
                    break
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    break
            if stop.is_set():
                return
            outcome = read_response(s)
        counts.add(f"slow writer {outcome}")
        if outcome not in (200, 408, "close"):
            counts.note(f"slow writer: {outcome}")


def slow_reader(addr, stop, counts):
    request = f"GET /bytes/{SLOW_READ_SIZE} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()
    while not stop.is_set():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            s.settimeout(HANG_AFTER)
            s.connect(addr)
            s.sendall(request)
        except OSError as e:
            s.close()
            counts.add("slow reader connect errors")
            counts.note(f"slow reader: {e}")
            stop.wait(1)
            continue
        with s:
            status, head, rest = read_head(s, time.monotonic() + HANG_AFTER)
            if status != 200:
                counts.add(f"slow reader {status}")
                counts.note(f"slow reader: {status}")
                continue
            missing = content_length(head) - len(rest)
            outcome = "complete"
            while missing > 0:
                if stop.wait(SLOW_READ_PIECE / SLOW_READ_RATE):
                    return
                try:
                    s.settimeout(HANG_AFTER)
                    chunk = s.recv(min(missing, SLOW_READ_PIECE))
                except OSError:
                    chunk = b""
                if not chunk:
                    outcome = "cut"  # e.g. -write-timeout, if reading stalled that long
                    break
                missing -= len(chunk)
            counts.add(f"slow reader {outcome}")


def malformed(addr, stop, counts, rate):
    def probe(name, raw, may_answer):
        try:
            s = socket.create_connection(addr, timeout=HANG_AFTER)
        except OSError as e:
            counts.add("malformed connect errors")
            counts.note(f"malformed {name}: {e}")
            return
        with s:
            deadline = time.monotonic() + HANG_AFTER
            try:
                s.sendall(raw)
            except socket.timeout:
                pass  # not reading: read_head decides between an answer and a hang
            except OSError:
                pass  # closed or reset while we were still sending: an answer too
            outcome = read_head(s, deadline)[0]
        if outcome == "close" or (isinstance(outcome, int) and 400 <= outcome < 500):
            counts.add("malformed refused")
        elif isinstance(outcome, int) and outcome < 400 and may_answer:
            counts.add("malformed answered (allowed)")
        else:
            counts.add("malformed failed")
            counts.note(f"malformed {name}: {outcome}")

    i = 0
    while not stop.wait(1.0 / rate):
        name, raw, may_answer = CASES[i % len(CASES)]
        i += 1
        threading.Thread(target=probe, args=(name, raw, may_answer), daemon=True).start()


def clients(addr, out, idle, slow, bad_rate):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = addr.rsplit(":", 1)
    addr = (host, int(port))
    stop, counts = threading.Event(), Counts()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=idle_clients, args=(addr, idle, stop, counts))]
    for i in range(slow):
        target = slow_writer if i % 2 == 0 else slow_reader
        threads.append(threading.Thread(target=target, args=(addr, stop, counts)))
    if bad_rate > 0:
        threads.append(threading.Thread(target=malformed, args=(addr, stop, counts, bad_rate)))
    for t in threads:
        t.daemon = True
        t.start()
    while not stop.is_set():
        stop.wait(0.5)
    for t in threads:
        t.join(timeout=HANG_AFTER)
    with counts.lock, open(out, "w") as f:
        for name in sorted(counts.counts):
            f.write(f"{name.replace(' ', '_')} {counts.counts[name]}\n")
        for note in counts.notes:
            f.write(f"note {json.dumps(note)}\n")


def main(argv):
    if len(argv) >= 4 and argv[1] == "sample":
        sample(int(argv[2]), int(argv[3]), {int(p) for p in argv[4:]})
    elif len(argv) == 4 and argv[1] == "control":
        control(argv[2], argv[3])
    elif len(argv) == 2 and argv[1] == "serve":
        serve()
    elif len(argv) >= 4 and argv[1] == "clients":
        opts = dict(zip(argv[4::2], argv[5::2]))
        clients(argv[2], argv[3], int(opts.get("--idle", 500)), int(opts.get("--slow", 50)),
                float(opts.get("--bad-rate", 3)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
