"""metrics-app from seeds 000/001, rebuilt on the standard library (the original used Flask).

GET /counter increments a counter, answers `Counter value: N` and, like the original, starts a
"metrics collector" in a background thread: it reads resources.dat (next to this file), decodes
the base64 into a temporary .py file in /tmp and runs it with `python3`. That script leaks 10 MiB
blocks forever, and every request starts another one. GET /healthz answers `ok`.

Usage: python3 app.py [PORT]   (or PORT in the environment; default: an ephemeral port)
This is a test program for leakwatch's demo and integration tests, not code taken from a target.
"""
import base64
import binascii
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
RESOURCES = os.path.join(HERE, 'resources.dat')

counter = 0
counter_lock = threading.Lock()


log_lock = threading.Lock()


def log(message):
    # One write per line under a lock: request threads and collector threads log at once.
    with log_lock:
        sys.stdout.write(message + '\n')
        sys.stdout.flush()


def describe_exit(code):
    if code < 0:
        return 'signal %d' % -code
    return 'exit code %d' % code


def run_collector():
    """The background task of the original: decode resources.dat, write it out, run it."""
    try:
        with open(RESOURCES, 'rb') as f:
            source = base64.b64decode(f.read())
    except (OSError, binascii.Error) as err:
        log('collector: cannot load %s: %s' % (RESOURCES, err))
        return
    with tempfile.NamedTemporaryFile(suffix='.py', delete=False) as tmp:
        tmp.write(source)
        path = tmp.name
    try:
        proc = subprocess.Popen(['python3', path])
    except OSError as err:
        log('collector: cannot start python3 %s: %s' % (path, err))
        return
    log('collector: started pid %d running %s' % (proc.pid, path))
    # Waiting here reaps the child, so a killed collector does not linger as a zombie.
    code = proc.wait()
    log('collector: pid %d ended with %s' % (proc.pid, describe_exit(code)))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global counter
        if self.path == '/counter':
            with counter_lock:
                counter += 1
                value = counter
            threading.Thread(target=run_collector, daemon=True).start()
            self.reply(200, 'Counter value: %d' % value)
        elif self.path == '/healthz':
            self.reply(200, 'ok')
        else:
            self.reply(404, 'not found')

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header('Content-Type', 'text/plain; charset=utf-8')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        log('%s %s' % (self.address_string(), fmt % args))


def main():
    port_text = sys.argv[1] if len(sys.argv) > 1 else os.environ.get('PORT', '0')
    try:
        port = int(port_text)
    except ValueError:
        print('metrics-app: port must be a number, got %r' % port_text, file=sys.stderr, flush=True)
        sys.exit(2)
    server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
    log('listening on 127.0.0.1:%d' % server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
