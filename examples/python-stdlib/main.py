"""A service with only the standard library: answers GET / on $PORT."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({
            "service": os.environ.get("BERTH_SERVICE"),
            "version": os.environ.get("BERTH_VERSION"),
            "uid": os.getuid(),
            "path": self.path,
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(fmt % args)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"listening on {port}")
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
