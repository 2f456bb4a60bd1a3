"""payment-processor from seed 002: a payment-method cache that is never evicted.

Every transaction from a new customer adds its payment method to `payment_method_cache`, which
has no size limit and no TTL, so under steady load the process grows about 1 MiB a second on
top of a ~60 MiB working set (the original: 2-5 hours to 512Mi; here about 90 s to 160 MiB).
Each batch also builds a temporary working set that is released when the batch is done, which
gives the GC-like sawtooth (about 16 MiB tall, every 4 s) that the real service showed; the OOM
kill comes on one of its peaks. The first seconds are a warm-up that loads reference data.
This is a test program for leakwatch's demo and integration tests, not code taken from a target.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from service import PaymentService  # noqa: E402


class UnboundedCache:
    """The bug: a plain dict, like the original `new HashMap<>()`; nothing is ever removed."""

    def __init__(self):
        self.entries = {}

    def get(self, key):
        return self.entries.get(key)

    def put(self, key, value):
        self.entries[key] = value

    def __len__(self):
        return len(self.entries)


if __name__ == '__main__':
    PaymentService(UnboundedCache(), name='payment-processor').run()
