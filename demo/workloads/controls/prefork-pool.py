"""Control: a pre-fork server (gunicorn-style). The parent forks 4 workers at start; each loads
about 8 MiB and then serves light requests with flat memory. Several sibling children appear at
once, but none of them grows: leakwatch must not call this a fan-out leak.
This is a test program for leakwatch's tests and demo, not code taken from a target.
"""
import os
import signal
import sys
import time

WORKERS = 4
WORKER_BYTES = 8 * 1024 * 1024


def worker(index):
    parent = os.getppid()
    app_state = bytearray(WORKER_BYTES)
    handled = 0
    while True:
        # A request: some short-lived allocations, freed at once.
        scratch = [str(n) * 8 for n in range(500)]
        handled += 1
        del scratch
        if handled % 100 == 0:
            print('worker %d (pid %d): handled %d requests, state %d MiB' % (index, os.getpid(), handled, len(app_state) >> 20), flush=True)
        # An orphaned worker exits rather than idling forever outside any supervision.
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.1)


def main():
    children = []
    for index in range(WORKERS):
        # Flushed before each fork, or the child would print the parent's buffered output again.
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                worker(index)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(signum, frame):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print('ready: prefork pool of %d workers: %s' % (WORKERS, ' '.join(str(p) for p in children)), flush=True)
    alive = set(children)
    while alive:
        pid, status = os.wait()
        alive.discard(pid)
        print('worker pid %d ended with status %d' % (pid, status), flush=True)
    print('all workers ended', flush=True)


if __name__ == '__main__':
    main()
