"""Control: an app that runs a helper script of its own every 2 s, `python3 worker.py` from its
own directory (an installed file, not something written to /tmp moments before). Regular
short-lived children with flat memory: leakwatch must not call this a suspicious spawn.
This is a test program for leakwatch's tests and demo, not code taken from a target.
"""
import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INTERVAL_S = 2


def main():
    print('ready: runner starting worker.py every %d s' % INTERVAL_S, flush=True)
    runs = 0
    while True:
        started = time.monotonic()
        try:
            result = subprocess.run(['python3', 'worker.py'], cwd=HERE, timeout=30)
            runs += 1
            print('run %d: worker.py exited with %d' % (runs, result.returncode), flush=True)
        except (OSError, subprocess.TimeoutExpired) as err:
            print('worker.py failed: %s' % err, flush=True)
        time.sleep(max(0.0, started + INTERVAL_S - time.monotonic()))


if __name__ == '__main__':
    main()
