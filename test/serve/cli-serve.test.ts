/** `search-r3 serve` as a user runs it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { runCli } from '../helpers/cli.js';

test('serve on a port in use says so in one sentence and exits with 2', async () => {
  const { dir, cleanup } = tempDir('busy');
  const modelDir = await tinyModelDir(dir);
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const port = (holder.address() as net.AddressInfo).port;
  try {
    const r = runCli(['serve', '--model', modelDir, '--port', String(port)]);
    assert.equal(r.status, 2, r.stderr);
    const want = `search-r3: --port ${port} is in use; pick another with --port or stop the other server.`;
    assert.equal(r.stderr.trim(), want);
  } finally {
    holder.close();
    cleanup();
  }
});
