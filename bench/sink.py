#!/usr/bin/env python3
"""Upload sink for bench/upload.sh: reads every body byte (Content-Length or chunked), then answers 200."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _drain(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return
                while size:
                    size -= len(self.rfile.read(min(size, 1 << 20)))
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", "0"))
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)

    def _answer(self):
        try:
            self._drain()
        except (ValueError, ConnectionError):
            # An upload the proxy cut off mid-body: nothing to answer.
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    do_GET = _answer
    do_POST = _answer
    do_PUT = _answer


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
