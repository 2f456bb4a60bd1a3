"""Control: a steady allocate/release cycle (a GC-like sawtooth) with no growth underneath.

Every 250 ms it maps and touches 2 MiB more, up to 20 MiB, then releases all of it at once:
a 5 s period. leakwatch must not call this a leak.
This is a test program for leakwatch's tests and demo, not code taken from a target.
"""
import mmap
import time

MiB = 1024 * 1024
PAGE = 4096
STEP_BYTES = 2 * MiB
PEAK_BYTES = 20 * MiB
STEP_S = 0.25


def touched_mapping(size):
    # Private (Python's default is shared, counted as shmem) and written, so it is anon and
    # resident; a mapping rather than malloc so that close() gives it back to the kernel.
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, size, PAGE):
        m[offset] = 1
    return m


def main():
    print('ready: sawtooth %d MiB tall, one step every %d ms' % (PEAK_BYTES // MiB, STEP_S * 1000), flush=True)
    held = []
    cycles = 0
    start = time.monotonic()
    steps = 0
    while True:
        held.append(touched_mapping(STEP_BYTES))
        if len(held) * STEP_BYTES >= PEAK_BYTES:
            for m in held:
                m.close()
            held = []
            cycles += 1
            if cycles % 6 == 0:
                print('%d cycles done' % cycles, flush=True)
        steps += 1
        # Scheduled against the clock so the period does not drift on a busy machine.
        time.sleep(max(0.0, start + steps * STEP_S - time.monotonic()))


if __name__ == '__main__':
    main()
