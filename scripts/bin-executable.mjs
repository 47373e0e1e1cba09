#!/usr/bin/env node
// Marks each file named under package.json's "bin" executable. tsc writes its output without the executable
// bit, and `npm run build` deletes dist/ first, so a rebuild leaves the CLI unrunnable through the bin link
// npx made earlier ("sh: search-r3: Permission denied") until this runs. The root defaults to this
// repository; a test passes another.
import { chmodSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { bin = {} } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
for (const file of typeof bin === 'string' ? [bin] : Object.values(bin)) {
  const target = path.join(root, file);
  // read, write and execute for the owner; read and execute for the rest, as npm's own bin links set
  chmodSync(target, statSync(target).mode | 0o755);
}
