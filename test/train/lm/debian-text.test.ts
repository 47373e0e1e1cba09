/**
 * Debian's text packages as pretraining text: each format's extraction on small inputs written here
 * (dictd, WordNet, POD, HTML, GNU info), a corpus built from a package laid out under a fixture root
 * (licence, attribution and version in the manifest), and, where the packages are installed (setup.sh
 * installs them), a corpus built from the real dictionaries whose manifest's licences the packages'
 * own copyright files bear out.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  DEBIAN_TEXT_SOURCES,
  dictdEntries,
  dictdNumber,
  htmlParagraphs,
  infoParagraphs,
  packParagraphs,
  podParagraphs,
  wordnetGlosses,
} from '../../../src/train/lm/debian-text.js';
import { buildTextCorpus, knownCorpusSources } from '../../../src/train/lm/text-corpus.js';
import { dictd } from '../../helpers/dictd-fixture.js';
import { sharedData } from '../../helpers/repo.js';

let dir = '';
before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'debian-text-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test('dictd: base-64 offsets, each entry once, header left out, markup cleaned', () => {
  assert.equal(dictdNumber('A'), 0);
  assert.equal(dictdNumber('BA'), 64);
  assert.equal(dictdNumber('Gm0X'), 6 * 64 ** 3 + 38 * 64 ** 2 + 52 * 64 + 23);
  const { index, dict } = dictd([
    ['enemy', 'Enemy \\En"e*my\\, a.\n   Hostile; {inimical}.\n   [1913 Webster]\n'],
    ['folly', 'FOLLY, n. That "gift and\n   faculty divine".\n\n   A second paragraph.\n'],
  ]);
  assert.deepEqual(dictdEntries(index, dict), [
    'Enemy, a. Hostile; inimical.',
    'FOLLY, n. That "gift and faculty divine".\nA second paragraph.',
  ]);
});

test('WordNet: words, part of speech and gloss of each synset; the licence header is not text', () => {
  const data =
    '  1 This software and database is being provided to you, the LICENSEE, by  \n' +
    '00001740 03 n 02 entity 0 thing 1 003 ~ 00001930 n 0000 | that which is perceived or known  \n' +
    '00002098 00 a 01 able(a) 0 002 = 05200169 n 0000 | having the necessary means; "able to swim"  \n' +
    '00002137 03 n 01 physical_entity 0 001 @ 00001740 n 0000 | an entity that has physical existence  \n';
  assert.deepEqual(wordnetGlosses(data, 'noun'), [
    'entity, thing (noun): that which is perceived or known',
    'able (noun): having the necessary means; "able to swim"',
    'physical entity (noun): an entity that has physical existence',
  ]);
});

test('POD: headings, items and prose with formatting codes resolved; code and =begin blocks left out', () => {
  const pod = [
    '=encoding utf8',
    '=head1 NAME',
    'perlfoo - how B<Perl> does I<foo>',
    '=head2 The C<< $a->b >> operator',
    'Use C<print> and see L<perlfunc/"print"> or L<the manual|perlop>. 1 E<lt> 2, E<0x263A>.X<index>',
    '    my $x = 1;   # verbatim: code',
    '=over 4',
    '=item * first item',
    '=back',
    '=begin html',
    '<p>only for HTML</p>',
    '=end html',
    '=cut',
    'sub after_cut { }',
    '=pod',
    'Back in POD.',
  ].join('\n\n');
  assert.deepEqual(podParagraphs(pod), [
    'NAME',
    'perlfoo - how Perl does foo',
    'The $a->b operator',
    'Use print and see print in perlfunc or the manual. 1 < 2, ☺.',
    'first item',
    'Back in POD.',
  ]);
});

test('HTML: paragraphs, headings, list items, DocBook paras; navigation, code, contents, scripts left out', () => {
  const html = `<html><head><title>SELECT</title><style>p { color: red }</style></head><body>
    <ul class="docnav top"><li class="previous"><a href="a.html"><strong>Prev</strong> The previous page</a></li></ul>
    <div class="toc"><dl><dt><span class="section"><a href="#x">11.1. Mail Server Set Up</a></span></dt></dl></div>
    <h2 class="title">6.2. <code class="command">apt-get</code> and Friends<a class="headerlink" href="#h">¶</a></h2>
    <p><span class="productname">PostgreSQL</span>'s planner &amp; executor use &lt;indexes&gt;&nbsp;when they can.</p>
    <pre class="screen">$ apt-get install foo bar baz</pre>
    <div class="para">
      The <em>handbook</em> writes paragraphs
      as divs.
    </div>
    <ul><li>A list item with words.</li><li>Next</li></ul>
    <p>梵語是印度的古典語言。</p>
    <script>var a = "<p>not text at all here</p>";</script>
    </body></html>`;
  assert.deepEqual(htmlParagraphs(html), [
    '6.2. apt-get and Friends',
    "PostgreSQL's planner & executor use <indexes> when they can.",
    'The handbook writes paragraphs as divs.',
    'A list item with words.',
    '梵語是印度的古典語言。',
  ]);
});

test('GNU info: node headers, menus and the tag table left out', () => {
  const info =
    'This is standards.info, produced by makeinfo.\n\n' +
    '\x1f\nFile: standards.info,  Node: Top,  Next: Preface,  Up: (dir)\n\nVersion\n*******\n\n' +
    'The GNU coding standards, last updated 2022.\n\n* Menu:\n\n* Preface::     About the GNU Coding Standards.\n\n' +
    '\x1f\nFile: standards.info,  Node: Preface\n\n1 About the GNU Coding Standards\n\nThe GNU Coding Standards were ' +
    'written by Richard Stallman.\n\n\x1f\nTag Table:\nNode: Top\x7f123\n\x1f\nEnd Tag Table\n';
  assert.deepEqual(infoParagraphs(info), [
    'This is standards.info, produced by makeinfo.',
    'Version\n*******',
    'The GNU coding standards, last updated 2022.',
    '1 About the GNU Coding Standards',
    'The GNU Coding Standards were written by Richard Stallman.',
  ]);
});

test('paragraphs are packed into documents of about the asked size and never split', () => {
  const docs = [...packParagraphs(['a'.repeat(40), 'b'.repeat(40), 'c'.repeat(40)], 50)];
  assert.deepEqual(docs, [`${'a'.repeat(40)}\n\n${'b'.repeat(40)}`, 'c'.repeat(40)]);
});

test('a corpus from a package under a fixture root: its licence, attribution and version in the manifest', async () => {
  const root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'usr/share/dictd'), { recursive: true });
  mkdirSync(path.join(root, 'var/lib/dpkg'), { recursive: true });
  const entries: Array<[string, string]> = Array.from({ length: 30 }, (_, i) => [
    `word${i}`,
    `WORD${i}, n. The ${i}th word of a small dictionary written by the test, defined at some length so that ` +
      `entries pack into several documents.\n`,
  ]);
  const { index, dict } = dictd(entries);
  writeFileSync(path.join(root, 'usr/share/dictd/devil.index'), index);
  writeFileSync(path.join(root, 'usr/share/dictd/devil.dict.dz'), gzipSync(dict));
  writeFileSync(
    path.join(root, 'var/lib/dpkg/status'),
    'Package: dict-gcide\nStatus: install ok installed\nVersion: 9\n\n' +
      'Package: dict-devil\nStatus: install ok installed\nVersion: 1.0-13.1\n',
  );
  const m = await buildTextCorpus(sharedData, path.join(dir, 'fixture-corpus'), {
    seed: 0,
    validFraction: 0,
    shardBytes: 1e6,
    only: ['debian-devil'],
    debianRoot: root,
  });
  assert.equal(m.sources.length, 1);
  const s = m.sources[0];
  assert.equal(s.name, 'debian-devil');
  assert.equal(s.licence, 'public domain (per /usr/share/doc/dict-devil/copyright)');
  assert.match(s.attribution, /^The Devil's Dictionary, Ambrose Bierce.*dict-devil\), version 1\.0-13\.1$/);
  assert.deepEqual(s.paths, [
    path.join(root, 'usr/share/dictd/devil.index'),
    path.join(root, 'usr/share/dictd/devil.dict.dz'),
  ]);
  const text = readFileSync(path.join(dir, 'fixture-corpus', m.train[0].file), 'utf8');
  assert.ok(s.documents >= 2, `${s.documents} documents`);
  assert.equal(m.totals.trainDocuments, s.documents);
  for (let i = 0; i < 30; i++) assert.ok(text.includes(`WORD${i}, n. The ${i}th word`), `entry ${i}`);
  assert.ok(!text.includes('A test dictionary'), 'the 00-database header is not text');
});

test('every Debian source is known to --only, with the package it needs', () => {
  const known = knownCorpusSources(sharedData);
  for (const d of DEBIAN_TEXT_SOURCES) assert.deepEqual(known.find((k) => k.name === d.name)?.pkg, d.pkg);
  assert.equal(new Set(known.map((k) => k.name)).size, known.length, 'names are unique');
});

/** Words each package's copyright file must contain for the licence the manifest claims. */
const LICENCE_EVIDENCE: Record<string, RegExp> = {
  'jargon-text': /public domain/i,
  'debian-reference-en': /GPL-2\+|General Public License/,
  'dict-gcide': /GNU General Public License[\s\S]*either version 2, or \(at your option\)/,
  'dict-foldoc': /GNU Free Documentation\s+License, Version 1\.1 or any later/,
  'dict-devil': /public domain/,
  'wordnet-base': /License: WordNet3\.0/,
  'perl-doc': /GPL-1\+ or Artistic/,
  'postgresql-doc-15': /License: PostgreSQL/,
  'debian-handbook': /GPL-2\.0\+ or CC-BY-SA-3\.0/,
  'python3-doc': /Python Software Foundation|PSF/,
  'debian-policy': /GPL-2\+/,
  'developers-reference': /GPL-2/,
  'gnu-standards': /GNU Free Documentation License, Version 1\.3 or/,
};

const copyrightFile = (pkg: string): string | undefined => {
  if (pkg !== 'python3-doc') return `/usr/share/doc/${pkg}/copyright`;
  // python3-doc depends on the versioned package that holds the files and their copyright
  const d = readdirSync('/usr/share/doc').find((n) => /^python3\.\d+-doc$/.test(n));
  return d && `/usr/share/doc/${d}/copyright`;
};

test("installed packages: each licence in the manifest is borne out by the package's copyright file", async (t) => {
  const installed = DEBIAN_TEXT_SOURCES.filter((d) => d.files('/').length > 0);
  for (const d of installed) {
    const file = copyrightFile(d.pkg);
    assert.ok(file && existsSync(file), `${d.pkg}: copyright file`);
    assert.match(readFileSync(file, 'utf8'), LICENCE_EVIDENCE[d.pkg], `${d.pkg}: ${d.licence}`);
  }
  // the small real dictionaries: a corpus from them, and its manifest
  const small = installed.map((d) => d.name).filter((n) => n === 'debian-devil' || n === 'debian-foldoc');
  if (small.length === 0) {
    t.skip('dict-devil and dict-foldoc are not installed (scripts/setup.sh installs them)');
    return;
  }
  const m = await buildTextCorpus(sharedData, path.join(dir, 'real-corpus'), {
    seed: 0,
    validFraction: 0.05,
    shardBytes: 8e6,
    only: small,
  });
  assert.deepEqual(
    m.sources.map((s) => s.name),
    small,
  );
  for (const s of m.sources) {
    const d = DEBIAN_TEXT_SOURCES.find((x) => x.name === s.name)!;
    assert.equal(s.licence, d.licence);
    assert.match(s.attribution, /\(Debian package dict-[a-z]+\), version \S+$/);
    assert.ok(s.documents > 50 && s.bytes > 100_000, `${s.name}: ${s.documents} documents, ${s.bytes} bytes`);
  }
  const all = [...m.train, ...m.valid].map((f) => readFileSync(path.join(dir, 'real-corpus', f.file), 'utf8')).join('');
  if (small.includes('debian-devil')) assert.match(all, /CYNIC, n\. A blackguard whose faulty vision/);
  if (small.includes('debian-foldoc')) assert.match(all, /compiler\\n<programming, tool> A program that converts/);
});
