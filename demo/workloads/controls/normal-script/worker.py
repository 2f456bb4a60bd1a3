"""The helper that runner.py starts: a small batch job that takes about a second and exits."""
import time

records = [{'id': n, 'value': n * n} for n in range(20000)]
total = sum(r['value'] for r in records)
time.sleep(1)
print('worker: processed %d records, checksum %d' % (len(records), total % 1000003), flush=True)
