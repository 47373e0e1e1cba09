/**
 * Stage-1 pairs from the Debian text packages: headwords and definitions from small dictd and WordNet inputs
 * written here, sections from POD, HTML and underlined plain text, the heading filter, one example per
 * headword with its senses as positives, the seeded cap, the manifest's licences, the file read back by a
 * jsonl source, and a missing package named in one sentence. Where the packages are installed (setup.sh
 * installs them), pairs from the real small sources too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { dictdRawEntries, htmlBlocks, podBlocks, textParagraphs } from '../../../src/train/lm/debian-text.js';
import {
  blockSections,
  buildDebianPairs,
  cutText,
  foldocSense,
  gcideSense,
  headingQuery,
  htmlSectionBlocks,
  MissingPackagesError,
  NoPairsError,
  pairSources,
  pairsManifestPath,
  readPairsManifest,
  seededSample,
  underlinedSections,
} from '../../../src/train/sft/debian-pairs.js';
import { loadTrainingData } from '../../../src/train/sft/data.js';
import { dictd } from '../../helpers/dictd-fixture.js';
import { tempDir } from '../../helpers/train-fixtures.js';

test('GCIDE: the headword before its pronunciation; the definition after the head line and its etymology', () => {
  const { index, dict } = dictd([
    [
      'Enemy',
      'Enemy \\En"e*my\\, n.; pl. {Enemies}. [OF. enemi, F. ennemi, from\n   L. inimicus.]\n' +
        '   One hostile to another; a foe; an adversary.\n   [1913 Webster]\n',
    ],
    ['Dog', 'Dog \\Dog\\, v. t. [imp. & p. p. {Dogged}.]\n   To hunt or track like a hound.\n   [1913 Webster]\n'],
    ['Ephemeral', 'Ephemeral, a.\n   1. Beginning and ending in a day.\n\n   2. Short-lived.\n'],
  ]);
  assert.deepEqual(dictdRawEntries(index, dict).map(gcideSense), [
    { term: 'Enemy', definition: 'One hostile to another; a foe; an adversary.' },
    { term: 'Dog', definition: 'To hunt or track like a hound.' },
    { term: 'Ephemeral', definition: '1. Beginning and ending in a day. 2. Short-lived.' },
  ]);
  assert.equal(gcideSense('Odd \\Odd\\, a. [Icel. oddi\n   a point of land'), null, 'an etymology never closed');
  // a pronunciation left on the line after the headword goes with its part of speech and etymology
  assert.deepEqual(
    gcideSense("Educability\n   ([e^]d`[-u]*k[.a]*b[i^]l\"[i^]*t[y^]), n. [Cf. F. ['e]ducabilit['e].]\n   Capability."),
    {
      term: 'Educability',
      definition: 'Capability.',
    },
  );
  assert.equal(
    gcideSense('Paradox \\Par"a*dox\\, n.; pl. {Paradoxes}\n   (p[a^]r"[.a]*d[o^]ks*[e^]z). [F. paradoxe.] 1. A tenet.')
      ?.definition,
    '1. A tenet.',
  );
  assert.deepEqual(gcideSense('Euganoidei\n   (Zo["o]l.) A group which includes the bony ganoids.'), {
    term: 'Euganoidei',
    definition: '(Zo["o]l.) A group which includes the bony ganoids.',
  });
});

test("FOLDOC: the first paragraph is the headword; subject tags and the edit's date go", () => {
  assert.deepEqual(
    foldocSense(
      'compiler\n\n   <programming, tool> A program that converts {source code}\n   into machine code.\n\n' +
        '   (2018-05-22)\n\n',
    ),
    { term: 'compiler', definition: 'A program that converts source code into machine code.' },
  );
  assert.deepEqual(foldocSense('document\n\n   1. <application> A file.\n\n   2. <hypertext> A node.\n'), {
    term: 'document',
    definition: '1. A file. 2. A node.',
  });
});

test('headings as queries: section numbers and marks removed; generic, numeric and stray headings refused', () => {
  const cases: Array<[string, string | null]> = [
    ['6.2. aptitude, apt-get, and apt Commands', 'aptitude, apt-get, and apt Commands'],
    ['3.1.1. Numbers¶', 'Numbers'],
    ['Chapter 6. Maintenance and Updates', 'Maintenance and Updates'],
    ['Kapitel 7. Probleme lösen', 'Probleme lösen'],
    ['A.2 Release Notes', 'Release Notes'],
    ['第 5 章 打包系统', '打包系统'],
    ['A list of tools', 'A list of tools'],
    ['Pattern  Matching:', 'Pattern Matching'],
    ['DESCRIPTION', null],
    ['See also', null],
    ['9.7. Examples', null],
    ['NAME', null],
    ['Table of Contents', null],
    ['12.3', null],
    ['', null],
  ];
  for (const [heading, want] of cases) assert.equal(headingQuery(heading), want, heading);
});

test('sections: POD, HTML and underlined plain text; each heading with the text up to the next heading', () => {
  const pod = [
    '=head1 NAME',
    'perlfoo - how Perl does foo',
    '=head2 The B<foo> operator',
    'It does I<foo>.',
    '    my $x = foo;   # verbatim: code',
    '=item * and more',
    '=head2 Empty',
    '    code only',
    '=head1 SEE ALSO',
    'perlbar',
  ].join('\n\n');
  assert.deepEqual(blockSections(podBlocks(pod)), [
    { heading: 'NAME', text: 'perlfoo - how Perl does foo' },
    { heading: 'The foo operator', text: 'It does foo. and more' },
    { heading: 'SEE ALSO', text: 'perlbar' },
  ]);
  const html = `<body><h3><a href="../contents.html">Table of Contents</a></h3><p>A sidebar's words here.</p>
    <h1><span class="section-number">3. </span>Strings<a class="headerlink" href="#s">¶</a></h1>
    <p>Strings are written in quotes, single or double.</p><p>Next</p>
    <h2 class="title"><a id="x"></a>3.1. Slicing</h2><div class="para">Slices take <code>s[i:j]</code> apart.</div>
    </body>`;
  assert.deepEqual(blockSections(htmlSectionBlocks(htmlBlocks(html))), [
    { heading: '', text: "A sidebar's words here." },
    { heading: '3. Strings', text: 'Strings are written in quotes, single or double.' },
    { heading: '3.1. Slicing', text: 'Slices take s[i:j] apart.' },
  ]);
  const text =
    'Policy\n******\n\nAn abstract.\n\n1.1. Scope\n==========\n\nThis manual describes\nthe policy.\n\nMore.';
  assert.deepEqual(underlinedSections(textParagraphs(text)), [
    { heading: 'Policy', text: 'An abstract.' },
    { heading: '1.1. Scope', text: 'This manual describes the policy. More.' },
  ]);
});

test('positives are cut after their last whole sentence that fits, else at a space', () => {
  assert.equal(cutText('Short.', 20), 'Short.');
  assert.equal(cutText('One sentence here. Two sentences here. Three.', 40), 'One sentence here. Two sentences here.');
  assert.equal(cutText('a b c d e f g h i j k l m n o p', 10), 'a b c d e…');
});

test('the seeded sample: the cap, the same seed the same sample, another seed another', () => {
  const items = Array.from({ length: 100 }, (_, i) => i);
  const a = seededSample(items, 10, 3);
  assert.equal(a.length, 10);
  assert.deepEqual(seededSample(items, 10, 3), a);
  assert.notDeepEqual(seededSample(items, 10, 4), a);
  assert.equal(new Set(a).size, 10);
  assert.equal(seededSample(items, 1000, 3).length, 100);
});

/** A root with every source of pairs that the fixtures cover: GCIDE, FOLDOC, WordNet, perl-doc, python3-doc. */
function fixtureRoot(): string {
  const root = tempDir('debian-pairs-root');
  const at = (p: string): string => {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    return path.join(root, p);
  };
  const gcide = dictd([
    ['Dog', 'Dog \\Dog\\, n. [AS. docga.]\n   A quadruped of the genus Canis, the domestic dog.\n'],
    ['Dog', 'Dog \\Dog\\, v. t.\n   To hunt or track like a hound, insidiously.\n'],
    ['Enemy', 'Enemy \\En"e*my\\, n.\n   One hostile to another; a foe.\n'],
    ['See', 'Zo["o]logy \\Zo*ol"o*gy\\, n.\n   The science of animals and their lives.\n'],
  ]);
  // the index lists Dog twice, at both entries: dictd() adds DOG for the first as well
  writeFileSync(at('usr/share/dictd/gcide.index'), gcide.index);
  writeFileSync(at('usr/share/dictd/gcide.dict.dz'), gzipSync(gcide.dict));
  const foldoc = dictd([['compiler', 'compiler\n\n   <programming> A program that converts source into code.\n']]);
  writeFileSync(at('usr/share/dictd/foldoc.index'), foldoc.index);
  writeFileSync(at('usr/share/dictd/foldoc.dict.dz'), gzipSync(foldoc.dict));
  writeFileSync(
    at('usr/share/wordnet/data.noun'),
    '  1 This software and database is being provided to you, the LICENSEE, by  \n' +
      '02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus Canis that has ' +
      'been domesticated by man  \n' +
      '10114209 18 n 02 frump 0 dog 0 000 | a dull unattractive unpleasant girl or woman  \n',
  );
  writeFileSync(
    at('usr/share/perl/5.36/pod/perlfoo.pod'),
    [
      '=head1 NAME',
      'perlfoo - the foo manual',
      '=head1 Foo operators',
      'The foo operators take two operands and return the foo of them, as the table below shows.',
      '=head1 Syntax',
      'One syntax of the foo statement, written out in words for this test here.',
    ].join('\n\n'),
  );
  writeFileSync(
    at('usr/share/doc/python3.11/html/library/bar.html'),
    '<h1>Syntax</h1><p>Another syntax, of the bar statement, with words enough to be a section.</p>' +
      '<h2>2.1. Bar objects</h2><p>Bar objects hold a sequence of foos and return them one at a time.</p>',
  );
  writeFileSync(
    at('var/lib/dpkg/status'),
    'Package: dict-gcide\nStatus: install ok installed\nVersion: 0.48.5\n\n' +
      'Package: wordnet-base\nStatus: install ok installed\nVersion: 1:3.0-37\n',
  );
  return root;
}

const FIXTURE_SOURCES = ['debian-wordnet', 'debian-gcide', 'debian-foldoc', 'debian-perl-doc', 'debian-python-doc'];

test('a pairs file from packages under a fixture root: one example per headword, senses as positives', async () => {
  const root = fixtureRoot();
  const out = path.join(tempDir('debian-pairs'), 'corpus/pairs.jsonl');
  const m = await buildDebianPairs(out, {
    maxTerms: 100,
    maxHeadings: 100,
    seed: 0,
    debianRoot: root,
    only: FIXTURE_SOURCES,
  });
  const lines = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
  const byQuery = new Map(lines.map((l) => [l.query, l]));
  // "dog": WordNet's two synsets and GCIDE's two entries, merged, taken in turn, three at most; WordNet's case
  assert.deepEqual(byQuery.get('dog')?.pos, [
    'a member of the genus Canis that has been domesticated by man',
    'A quadruped of the genus Canis, the domestic dog.',
    'a dull unattractive unpleasant girl or woman',
  ]);
  assert.ok(!lines.some((l) => l.query === 'Dog' || l.query === 'DOG'), 'one example per headword');
  assert.deepEqual(byQuery.get('Canis familiaris')?.pos, [
    'a member of the genus Canis that has been domesticated by man',
  ]);
  assert.deepEqual(byQuery.get('compiler')?.pos, ['A program that converts source into code.']);
  assert.ok(byQuery.has('Enemy') && byQuery.has('frump') && byQuery.has('domestic dog'));
  assert.ok(!lines.some((l) => /Zo\[/.test(l.query)), 'a headword with markup is not a query');
  // headings: "Syntax" heads two texts (ambiguous), NAME is generic; numbers go
  assert.deepEqual(byQuery.get('Bar objects')?.pos, [
    'Bar objects hold a sequence of foos and return them one at a time.',
  ]);
  assert.ok(byQuery.has('Foo operators'));
  assert.ok(!byQuery.has('Syntax') && !byQuery.has('NAME'));
  assert.ok(lines.every((l) => l.neg.length === 0));
  assert.deepEqual(byQuery.get('Enemy')?.pos, ['One hostile to another; a foe.'], 'the head line is not in it');
  assert.deepEqual(m.available, { term: 6, heading: 2 });
  assert.equal(lines.length, 8);

  // the manifest: each package's licence and version, as the card shows them
  assert.deepEqual(readPairsManifest(out), m);
  assert.equal(pairsManifestPath(out), path.join(path.dirname(out), 'pairs.manifest.json'));
  const gcide = m.sources.find((s) => s.name === 'debian-gcide')!;
  assert.equal(gcide.kind, 'term');
  assert.match(gcide.licence, /^GPL-2\+/);
  assert.match(gcide.attribution, /GCIDE.*, version 0\.48\.5$/);
  assert.deepEqual([gcide.available, gcide.kept], [2, 2], 'dog and Enemy');
  assert.equal(m.sources.find((s) => s.name === 'debian-perl-doc')?.kind, 'heading');
  assert.equal(m.file.bytes, readFileSync(out).length);

  // the file is stage-1 data as it is: a jsonl source reads every example
  const { stats } = await loadTrainingData([{ type: 'jsonl', path: out }]);
  assert.equal(stats.examples, 8);
  assert.equal(stats.withoutPositive + stats.emptyTexts, 0);
});

test('the cap and the seed: the same seed gives the same file, another seed another sample', async () => {
  const root = fixtureRoot();
  const dir = tempDir('debian-pairs-cap');
  const build = (seed: number, name: string) =>
    buildDebianPairs(path.join(dir, name), {
      maxTerms: 3,
      maxHeadings: 1,
      seed,
      debianRoot: root,
      only: FIXTURE_SOURCES,
    });
  const queries = (f: string): string[] =>
    readFileSync(path.join(dir, f), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { query: string }).query);
  const a = await build(1, 'a.jsonl');
  assert.deepEqual(a.kept, { term: 3, heading: 1 });
  assert.deepEqual(a.available, { term: 6, heading: 2 });
  assert.equal(queries('a.jsonl').length, 4);
  await build(1, 'b.jsonl');
  assert.ok(readFileSync(path.join(dir, 'a.jsonl')).equals(readFileSync(path.join(dir, 'b.jsonl'))));
  const others = await Promise.all([2, 3, 4, 5].map((s) => build(s, `s${s}.jsonl`).then(() => queries(`s${s}.jsonl`))));
  assert.ok(
    others.some((q) => q.join() !== queries('a.jsonl').join()),
    'another seed draws another sample',
  );
});

test('a manifest beside a pairs file it does not describe (killed between the renames) is none', async () => {
  const dir = tempDir('debian-pairs-stale');
  const out = path.join(dir, 'pairs.jsonl');
  const build = (seed: number) =>
    buildDebianPairs(out, { maxTerms: 3, maxHeadings: 1, seed, debianRoot: fixtureRoot(), only: FIXTURE_SOURCES });
  const old = await build(1);
  const oldManifest = readFileSync(pairsManifestPath(out));
  assert.deepEqual(readPairsManifest(out), old);
  // the new file renamed into place, the kill before its manifest followed
  const fresh = await build(2);
  assert.notEqual(fresh.file.sha256, old.file.sha256, 'the two builds differ');
  writeFileSync(pairsManifestPath(out), oldManifest);
  assert.equal(readPairsManifest(out), null);
});

test('a package that is not installed: one sentence naming it and scripts/setup.sh, and no file', async () => {
  const dir = tempDir('debian-pairs-missing');
  const out = path.join(dir, 'pairs.jsonl');
  await assert.rejects(
    buildDebianPairs(out, { maxTerms: 1, maxHeadings: 1, seed: 0, debianRoot: dir, only: ['debian-gcide'] }),
    (e: unknown) =>
      e instanceof MissingPackagesError &&
      e.message ===
        'the Debian package dict-gcide is not installed; run bash scripts/setup.sh (it installs them) first',
  );
  assert.throws(() => readFileSync(out));
});

test('a pairs file that cannot be written leaves no manifest beside it', async () => {
  const root = fixtureRoot();
  const dir = tempDir('debian-pairs-unwritable');
  const out = path.join(dir, 'dd.jsonl');
  mkdirSync(out); // a folder where the pairs file goes: its rename fails
  await assert.rejects(
    buildDebianPairs(out, { maxTerms: 5, maxHeadings: 5, seed: 0, debianRoot: root, only: FIXTURE_SOURCES }),
    (e: unknown) => (e as NodeJS.ErrnoException).code === 'EISDIR',
  );
  assert.deepEqual(readdirSync(dir), ['dd.jsonl'], 'no manifest, no temporary file');
  assert.deepEqual(readdirSync(out), []);
});

test('sources that give no pair: one sentence naming them, and no file', async () => {
  const root = tempDir('debian-pairs-none');
  mkdirSync(path.join(root, 'usr/share/dictd'), { recursive: true });
  // the one definition is too short to be a positive
  const foldoc = dictd([['compiler', 'compiler\n\n   <programming> A program.\n']]);
  writeFileSync(path.join(root, 'usr/share/dictd/foldoc.index'), foldoc.index);
  writeFileSync(path.join(root, 'usr/share/dictd/foldoc.dict.dz'), gzipSync(foldoc.dict));
  const out = path.join(tempDir('debian-pairs-none-out'), 'pairs.jsonl');
  await assert.rejects(
    buildDebianPairs(out, { maxTerms: 5, maxHeadings: 5, seed: 0, debianRoot: root, only: ['debian-foldoc'] }),
    (e: unknown) =>
      e instanceof NoPairsError &&
      e.message ===
        'debian-foldoc gave no pairs (0 term → definition, 0 heading → section examples found, before the caps); ' +
          'choose other sources with --only, or raise the caps',
  );
  assert.deepEqual(readdirSync(path.dirname(out)), []);
});

test('installed packages: the small real sources give pairs', { timeout: 60_000 }, async (t) => {
  const small = ['debian-foldoc', 'debian-gnu-standards'];
  const sources = [...pairSources('term'), ...pairSources('heading')].filter((s) => small.includes(s.name));
  if (sources.some((s) => s.files('/').length === 0)) {
    t.skip('dict-foldoc or gnu-standards is not installed (scripts/setup.sh installs them)');
    return;
  }
  const out = path.join(tempDir('debian-pairs-real'), 'pairs.jsonl');
  const m = await buildDebianPairs(out, { maxTerms: 50, maxHeadings: 20, seed: 0, only: small });
  assert.ok(m.available.term > 5000 && m.available.heading > 30, JSON.stringify(m.available));
  assert.deepEqual(m.kept, { term: 50, heading: 20 });
  const { stats } = await loadTrainingData([{ type: 'jsonl', path: out }]);
  assert.equal(stats.examples, 70);
});
