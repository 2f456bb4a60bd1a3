"""stress-test from seed 004: the pod exists to be OOM-killed. Right after it starts it fills a
list with bytearrays, 2 MiB every 50 ms, and passes its 50Mi limit about a second in.

Outside a memory cgroup it stops at 100 MiB and holds it, so it is safe to run anywhere.
This is a test program for leakwatch's demo and integration tests, not code taken from a target.
"""
import time

MiB = 1024 * 1024
STEP_BYTES = 2 * MiB
STEP_S = 0.05
HARD_CAP_BYTES = 100 * MiB

hog = []


def main():
    print('ready: stress-test allocating %d MiB every %d ms' % (STEP_BYTES // MiB, STEP_S * 1000), flush=True)
    while len(hog) * STEP_BYTES < HARD_CAP_BYTES:
        # bytearray(n) writes its zeroes, so each block is charged to the cgroup at once.
        hog.append(bytearray(STEP_BYTES))
        if len(hog) % 5 == 0:
            print('allocated %d MiB' % (len(hog) * STEP_BYTES // MiB), flush=True)
        time.sleep(STEP_S)
    print('hard cap of %d MiB reached, holding it' % (HARD_CAP_BYTES // MiB), flush=True)
    while True:
        time.sleep(1)


if __name__ == '__main__':
    main()
