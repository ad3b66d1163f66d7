#!/usr/bin/env python3
"""A webhook receiver for trying notifications locally: prints every message it gets
(time, Idempotency-Key, body) and answers 200. Usage: python3 receiver.py [PORT]"""
import datetime
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            message = json.loads(body)
            summary = (f"{message.get('message')} episode {message.get('episode')} "
                       f"{message.get('device_id')}/{message.get('alert_key')}")
        except ValueError:
            summary = body.decode(errors="replace")
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        print(f"{now} {summary} key={self.headers.get('Idempotency-Key')}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9099
print(f"receiver listening on 127.0.0.1:{port}", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
