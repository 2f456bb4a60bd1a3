"""The payment service shared by app.py (leaking cache) and fixed.py (bounded cache).

Load is simulated against the clock (batches every 100 ms), so the memory curve has the same
shape on a busy machine as on an idle one.
"""
import mmap
import random
import time

MiB = 1024 * 1024
PAGE = 4096

WARMUP_S = 5
WARMUP_BASELINE_BYTES = 50 * MiB
TICK_S = 0.1
# New customers per batch: each cached payment method costs about 1.2 KiB, so ~1 MiB/s.
NEW_METHODS_PER_TICK = 85
RETURNING_PER_TICK = 40
# The per-batch temporary working set: grows 4 MiB/s to 16 MiB, then is released at once.
SAWTOOTH_STEP_BYTES = 400 * 1024
SAWTOOTH_PEAK_BYTES = 16 * MiB
LOG_EVERY_S = 5
# Second line of defence outside a memory cgroup: with the baseline and the sawtooth, the
# process stops growing near 300 MiB.
HARD_CAP_ENTRIES = 190000


def touched_mapping(size):
    """Anonymous memory that really is resident: mmap pages count only once written. A private
    mapping (Python's default is shared, which the kernel counts as shmem, not anon), and a
    mapping rather than malloc so that releasing it returns the memory to the kernel at once."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, size, PAGE):
        m[offset] = 1
    return m


def stamp():
    return time.strftime('%Y-%m-%d %H:%M:%S')


class PaymentService:
    def __init__(self, cache, name):
        self.cache = cache
        self.name = name
        self.rng = random.Random(2024)
        self.reference_data = []
        self.batch_scratch = []
        self.scratch_bytes = 0
        self.next_method = 0
        self.transactions = 0

    def log(self, level, message):
        print('%s [%s] %s' % (stamp(), level, message), flush=True)

    def warm_up(self):
        self.log('INFO', 'Loading routing tables and fraud rules...')
        steps = WARMUP_BASELINE_BYTES // MiB
        for _ in range(steps):
            self.reference_data.append(touched_mapping(MiB))
            time.sleep(WARMUP_S / steps)
        self.log('INFO', 'Warm-up done: %d MiB of reference data loaded' % (WARMUP_BASELINE_BYTES // MiB))

    def fetch_payment_method(self, method_id):
        # Stands in for the database round trip; the record is what gets cached.
        return {
            'id': method_id,
            'customer': 'cus_%08d' % self.next_method,
            'brand': self.rng.choice(('visa', 'mastercard', 'amex')),
            'last4': '%04d' % self.rng.randrange(10000),
            'billing_address': ('%08d Market Street, Springfield ' % self.next_method) * 24,
        }

    def process_batch(self):
        for _ in range(NEW_METHODS_PER_TICK):
            if len(self.cache) >= HARD_CAP_ENTRIES:
                break
            method_id = 'pm_%010d' % self.next_method
            self.cache.put(method_id, self.fetch_payment_method(method_id))
            self.next_method += 1
        for _ in range(RETURNING_PER_TICK):
            if self.next_method:
                self.cache.get('pm_%010d' % self.rng.randrange(self.next_method))
        self.transactions += NEW_METHODS_PER_TICK + RETURNING_PER_TICK
        # The temporary working set of in-flight batches, released when they complete.
        self.batch_scratch.append(touched_mapping(SAWTOOTH_STEP_BYTES))
        self.scratch_bytes += SAWTOOTH_STEP_BYTES
        if self.scratch_bytes >= SAWTOOTH_PEAK_BYTES:
            for m in self.batch_scratch:
                m.close()
            self.batch_scratch = []
            self.scratch_bytes = 0

    def run(self):
        self.warm_up()
        print('ready: %s serving, %d MiB baseline' % (self.name, WARMUP_BASELINE_BYTES // MiB), flush=True)
        start = time.monotonic()
        ticks = 0
        last_log = start
        while True:
            due = int((time.monotonic() - start) / TICK_S)
            while ticks < due:
                self.process_batch()
                ticks += 1
            now = time.monotonic()
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                self.log('INFO', 'Processing batch of %d transactions...' % self.transactions)
                self.log('INFO', 'Building in-memory cache for payment methods... (%d cached)' % len(self.cache))
            time.sleep(TICK_S / 2)
