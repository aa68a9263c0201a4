#!/usr/bin/env python3
"""The e2e test's Alertmanager webhook receiver (python3 stdlib only).

Listens on 127.0.0.1 on an ephemeral port, writes that port to PORT_FILE once listening, and
appends every POSTed notification to PAYLOAD_FILE as one JSON line. Stops on SIGTERM.

    webhook_receiver.py PORT_FILE PAYLOAD_FILE
"""

import http.server
import json
import os
import signal
import sys
import threading


def main(port_file, payload_file):
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                payload = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            with lock, open(payload_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(payload, ensure_ascii=False) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
