#!/usr/bin/env python3
"""A stand-in for dockerd's API in the end-to-end tests: serves GET /info (and
/_ping) on each unix socket given as SOCKET=JSONFILE, answering with the file's
current content, so a test changes a node's swarm role by rewriting its file.
GET /containers/json answers with JSONFILE.containers (a list of containers as
dockerd gives them: State, Mounts[].Name, Mounts[].Driver) when that file exists,
else 404 (a dockerd that lists no containers to vfiled)."""
import http.server
import os
import socketserver
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith("/info"):
            try:
                with open(self.server.info_file, "rb") as f:
                    body = f.read()
                code = 200
            except OSError as e:
                body, code = ('{"message":"%s"}' % e).encode(), 500
        elif path.endswith("/containers/json"):
            try:
                with open(self.server.info_file + ".containers", "rb") as f:
                    body = f.read()
                code = 200
            except OSError:
                body, code = b'{"message":"page not found"}', 404
        elif path.endswith("/_ping"):
            body, code = b"OK", 200
        else:
            body, code = b'{"message":"not found"}', 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):
        return "unix"

    def log_message(self, fmt, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    servers = []
    for arg in sys.argv[1:]:
        sock, info = arg.split("=", 1)
        if os.path.exists(sock):
            os.unlink(sock)
        s = Server(sock, Handler)
        s.info_file = info
        servers.append(s)
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
