"""data-processor, fixed as seed 003 proposes: only the most recent 100 events are kept.

Same event rate and payload as app.py, so the only difference between the two is the bound.
This is a test program for leakwatch's demo and integration tests, not code taken from a target.
"""
import time

EVENTS_PER_SECOND = 160
PAYLOAD_CHARS = 10000
PROGRESS_EVERY = 500
MAX_BUFFER_SIZE = 100

recent_data = []


def main():
    counter = 0
    start = time.monotonic()
    print('ready: data-processor (fixed) handling %d events/s, keeping the last %d' % (EVENTS_PER_SECOND, MAX_BUFFER_SIZE), flush=True)
    while True:
        due = int((time.monotonic() - start) * EVENTS_PER_SECOND)
        while counter < due:
            event_data = {
                'id': counter,
                'timestamp': time.time(),
                'payload': 'x' * PAYLOAD_CHARS,
            }
            # Only keep recent events
            recent_data.append(event_data)
            if len(recent_data) > MAX_BUFFER_SIZE:
                recent_data.pop(0)  # Remove oldest
            counter += 1
            if counter % PROGRESS_EVERY == 0:
                print('Processed %d events, recent_data size: %d' % (counter, len(recent_data)), flush=True)
        time.sleep(0.01)


if __name__ == '__main__':
    main()
