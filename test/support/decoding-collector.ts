// The seed's "collector" in miniature, for the spawn tests: base64-decode a file of the app
// (gunzip it too when run with the argument `gzip`) into a fresh temp .py, run that with the same
// Python, print "<child pid> <script path>" and wait. Run with `python3 -c <script> [gzip]` in the
// app's directory. The payloads the tests give it only sleep.
export function decodingCollectorScript(encodedFile: string): string {
  return `
import base64, gzip, os, subprocess, sys, tempfile, time
data = base64.b64decode(open(${JSON.stringify(encodedFile)}, 'rb').read())
if len(sys.argv) > 1 and sys.argv[1] == 'gzip':
    data = gzip.decompress(data)
fd, path = tempfile.mkstemp(suffix='.py')
os.write(fd, data)
os.close(fd)
child = subprocess.Popen([sys.executable, path])
print(child.pid, path, flush=True)
time.sleep(60)
`;
}
