"""Control: seed 001's fix. The collector still allocates a 10 MiB block every 0.5 s, but keeps
them in a deque(maxlen=3), so old blocks are dropped and memory stays flat at a few blocks.
leakwatch must not call this a leak.
This is a test program for leakwatch's tests and demo, not code taken from a target.
"""
import time
from collections import deque

BLOCK_BYTES = 10 * 1024 * 1024
INTERVAL_S = 0.5

global_memory = deque(maxlen=3)


def main():
    print('ready: bounded collector, %d blocks of %d MiB at most' % (global_memory.maxlen, BLOCK_BYTES >> 20), flush=True)
    blocks = 0
    while True:
        global_memory.append(bytearray(BLOCK_BYTES))
        blocks += 1
        if blocks % 20 == 0:
            print('%d blocks allocated, %d kept' % (blocks, len(global_memory)), flush=True)
        time.sleep(INTERVAL_S)


if __name__ == '__main__':
    main()
