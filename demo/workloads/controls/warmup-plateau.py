"""Control: a warm-up that grows about 40 MiB over 20 s (loading a model, filling a cache),
then stays flat while it keeps doing light work. leakwatch must not call this a leak.
This is a test program for leakwatch's tests and demo, not code taken from a target.
"""
import time

MiB = 1024 * 1024
WARMUP_BYTES = 40 * MiB
STEP_BYTES = MiB
WARMUP_S = 20

loaded = []


def main():
    print('ready: warming up, %d MiB over %d s' % (WARMUP_BYTES // MiB, WARMUP_S), flush=True)
    steps = WARMUP_BYTES // STEP_BYTES
    start = time.monotonic()
    for i in range(steps):
        # bytearray(n) writes its zeroes, so each step is resident at once.
        loaded.append(bytearray(STEP_BYTES))
        time.sleep(max(0.0, start + (i + 1) * WARMUP_S / steps - time.monotonic()))
    print('warm-up done: %d MiB loaded, now serving' % (len(loaded) * STEP_BYTES // MiB), flush=True)
    served = 0
    while True:
        # Light work that allocates and frees small objects only.
        total = sum(len(str(n)) for n in range(2000))
        served += 1
        if served % 50 == 0:
            print('served %d requests (last result %d)' % (served, total), flush=True)
        time.sleep(0.2)


if __name__ == '__main__':
    main()
