# The "metrics collector" hidden in resources.dat (seeds 000/001), scaled down for leakwatch's
# demo: every 12 s it allocates another 10 MiB block (the original: 5 x 100 MB per loop) and keeps
# every one of them in a global list, so it grows until the kernel OOM-kills it. resources.dat is
# this file in base64; metrics-app decodes it into a temporary .py file and runs it once per
# GET /counter. At this pace a collector per request fills metrics-app's 192 MiB over ~20 s of
# requests: long enough to be seen heading for the limit before the first OOM kill.
import random
import time

BLOCK_BYTES = 10 * 1024 * 1024
INTERVAL_S = 12.0
# Second line of defence for runs outside the demo's pod: inside a memory cgroup with a limit of
# at most 256 MiB only the kernel stops this program; anywhere else it stops growing early.
LIMITED_CAP_BYTES = 300 * 1024 * 1024
UNLIMITED_CAP_BYTES = 50 * 1024 * 1024
TIGHT_LIMIT_BYTES = 256 * 1024 * 1024

# Global list to keep references to bytearrays
global_memory = []


def memory_limit_bytes():
    """This process's memory cgroup limit (cgroup v1 or v2), or None when unlimited or unreadable."""
    try:
        with open('/proc/self/cgroup') as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(':', 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1], parts[2]
        if 'memory' in controllers.split(','):
            limit_file = '/sys/fs/cgroup/memory' + path + '/memory.limit_in_bytes'
        elif controllers == '':
            limit_file = '/sys/fs/cgroup' + path + '/memory.max'
        else:
            continue
        try:
            with open(limit_file) as f:
                text = f.read().strip()
            return None if text == 'max' else int(text)
        except (OSError, ValueError):
            continue
    return None


def hard_cap_bytes():
    limit = memory_limit_bytes()
    if limit is not None and limit <= TIGHT_LIMIT_BYTES:
        return LIMITED_CAP_BYTES
    return UNLIMITED_CAP_BYTES


def generate_blocks():
    cap = hard_cap_bytes()
    capped = False
    while True:
        # Each block comes one interval after the last, the first one too: a new collector is a
        # bare interpreter for its first INTERVAL_S.
        time.sleep(INTERVAL_S)
        _ = random.randint(1, 10)
        if len(global_memory) * BLOCK_BYTES < cap:
            # bytearray(n) writes its zeroes, so every page is charged to the cgroup at once.
            # Keep reference forever
            global_memory.append(bytearray(BLOCK_BYTES))
        elif not capped:
            capped = True
            print('collector: hard cap of %d MiB reached, no longer growing' % (cap >> 20), flush=True)


if __name__ == "__main__":
    generate_blocks()
