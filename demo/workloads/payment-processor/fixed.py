"""payment-processor, fixed as seed 002 proposes: the payment-method cache is an LRU with a
maximum size, so the process grows while the cache fills, then plateaus (with the same
sawtooth from each batch's temporary working set on top).
This is a test program for leakwatch's demo and integration tests, not code taken from a target.
"""
import os
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from service import PaymentService  # noqa: E402

# About 25 MiB of entries: reached some 25 s after warm-up.
MAX_ENTRIES = 20000


class LruCache:
    def __init__(self, max_entries):
        self.max_entries = max_entries
        self.entries = OrderedDict()

    def get(self, key):
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def put(self, key, value):
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def __len__(self):
        return len(self.entries)


if __name__ == '__main__':
    PaymentService(LruCache(MAX_ENTRIES), name='payment-processor (fixed)').run()
