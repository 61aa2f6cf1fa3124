#!/usr/bin/env python3
"""idle_connections.py PORT N [PATH]: opens N keep-alive connections to
127.0.0.1:PORT, sends one GET PATH on each and reads its answer, prints
"ready N" and holds them all open, idle, until its stdin closes (at most
120 s). Used by scripts/bench-auth to measure a server's memory per idle
keep-alive connection."""
import socket
import sys
import time


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/buy/ticket"
    request = f"GET {path} HTTP/1.1\r\nHost: spike\r\n\r\n".encode()
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        held.append(s)
    answered = 0
    for s in held:
        s.settimeout(10)
        data = s.recv(4096)
        if data.startswith(b"HTTP/1.1 200"):
            answered += 1
    print(f"ready {answered}", flush=True)
    deadline = time.time() + 120
    while time.time() < deadline and sys.stdin.readline():
        pass
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
