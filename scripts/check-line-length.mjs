#!/usr/bin/env node
// Lines longer than 120 characters in the project's own sources: the formatter keeps code within 120
// columns but cannot break a long string, regular expression or comment, so those are checked here.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const LIMIT = 120;
/** Files whose long lines are quoted text that must stay as published. */
const VERBATIM = new Set(['src/model/qwen2-chat-template.ts']);
const listed = ['ls-files', '-co', '--exclude-standard', 'src', 'test', 'bench', 'scripts', 'web'];
const files = execFileSync('git', listed, { encoding: 'utf8' })
  .split('\n')
  .filter((f) => /\.(ts|mjs)$/.test(f) && !VERBATIM.has(f));
const long = [];
for (const file of files) {
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if ([...line].length > LIMIT) long.push(`${file}:${i + 1}: ${[...line].length} characters`);
    });
}
if (long.length > 0) {
  console.error(`${long.length} lines run past ${LIMIT} characters:\n${long.join('\n')}`);
  process.exitCode = 1;
}
