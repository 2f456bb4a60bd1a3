"""data-processor from seed 003: every event is appended to `leaked_data`, which is never cleared.

The original handled one event per 0.01 s and ran into its 128Mi limit after a few minutes; this
one handles 160 events a second (each carrying a 10 kB payload, about 1.6 MB/s), so a 128 MiB
limit is reached in about 75 s. Events are scheduled against the clock rather than by sleeping a
fixed time after each one, so the growth rate does not depend on how busy the machine is.
This is a test program for leakwatch's demo and integration tests, not code taken from a target.
"""
import time

EVENTS_PER_SECOND = 160
PAYLOAD_CHARS = 10000
PROGRESS_EVERY = 500
# Second line of defence when run outside a memory cgroup: stop growing at about 300 MiB.
HARD_CAP_EVENTS = (300 * 1024 * 1024) // PAYLOAD_CHARS

leaked_data = []


def main():
    counter = 0
    capped = False
    start = time.monotonic()
    print('ready: data-processor handling %d events/s' % EVENTS_PER_SECOND, flush=True)
    while True:
        due = int((time.monotonic() - start) * EVENTS_PER_SECOND)
        while counter < due:
            if len(leaked_data) >= HARD_CAP_EVENTS:
                if not capped:
                    capped = True
                    print('hard cap reached at %d events, no longer growing' % len(leaked_data), flush=True)
                break
            event_data = {
                'id': counter,
                'timestamp': time.time(),
                'payload': 'x' * PAYLOAD_CHARS,
            }
            # The bug: every event is kept forever.
            leaked_data.append(event_data)
            counter += 1
            if counter % PROGRESS_EVERY == 0:
                print('Processed %d events, leaked_data size: %d' % (counter, len(leaked_data)), flush=True)
        time.sleep(0.01)


if __name__ == '__main__':
    main()
