/**
 * What startSearchServer and createSearchServer take from code, checked before the model loads: a value of the
 * wrong kind would otherwise surface later as a TypeError inside a request (an apiKey that is no string), a
 * server on a socket path (a port given as text), or limits that refuse every request (maxK 0).
 */
import { LocalBackend } from '../search-index/embedding-backend.js';
import { SearchIndex } from '../search-index/search-index.js';
import { incompatibility } from '../search-index/manifest.js';
import {
  type Refuse,
  NON_NEGATIVE_NUMBER,
  POSITIVE_INTEGER,
  checkKnownKeys,
  checkNumber,
  checkOptionsObject,
  refusal,
} from '../io/option-checks.js';
import { originProblem } from './cors.js';
import { WorkerBackend } from './model-worker.js';
import { DEFAULT_MAX_INPUTS, DEFAULT_MAX_QUEUE } from './server-context.js';
import { checkBatchingOptions } from './worker-protocol.js';

const POSITIVE_LIMITS = [
  'maxBodyBytes',
  'maxInputs',
  'maxTokensPerInput',
  'maxRequestTokens',
  'maxRequestReasoningTokens',
  'maxK',
  'maxQueue',
] as const;

/** Every option of ServeOptions (startSearchServer takes host and port beside them). */
const SERVE_OPTIONS = [
  'backend',
  'device',
  'index',
  'modelName',
  'apiKey',
  'corsOrigins',
  ...POSITIVE_LIMITS,
  'maxWaitMs',
  'maxBatchInputs',
  'refreshMs',
  'judgments',
  'runs',
];

/** The options of `caller`, each refusal starting with its name; createSearchServer takes a WorkerBackend only. */
export function checkServeOptions(
  opts: unknown,
  caller: 'startSearchServer' | 'createSearchServer' = 'startSearchServer',
): void {
  const refuse: Refuse = (message) => new Error(`${caller}: ${message}`);
  const o = checkOptionsObject(opts, 'the server options', refuse);
  // a misspelt apiKey ('apikey', 'api_key') dropped silently would leave the server open to anyone
  const known = caller === 'startSearchServer' ? [...SERVE_OPTIONS, 'host', 'port'] : SERVE_OPTIONS;
  checkKnownKeys(o, 'the server', known, refuse);
  const worker = 'a model, awaited: await WorkerBackend.start(dir)';
  if (caller === 'createSearchServer' && !(o.backend instanceof WorkerBackend))
    throw refuse(refusal("'backend'", worker, o.backend));
  if (!(o.backend instanceof WorkerBackend || o.backend instanceof LocalBackend))
    throw refuse(refusal("'backend'", `${worker} or await LocalBackend.fromModelDir(dir)`, o.backend));
  if (o.index !== undefined && !(o.index instanceof SearchIndex))
    throw refuse(refusal("'index'", 'an index, awaited: await SearchIndex.open(dir, { backend })', o.index));
  // an index opened without a backend (vectors only) is not checked against one: queries embedded by another
  // model, or with other prompts, would be searched among its vectors and ranked as noise
  const why = o.index && incompatibility(o.index.info, o.backend);
  if (why)
    throw refuse(`'index' and 'backend' do not match: ${why}; serve the index with the model it was built with.`);
  checkNumber(o.port, "'port'", { integer: true, min: 0, max: 65535 }, refuse);
  for (const name of ['host', 'apiKey', 'modelName'] as const)
    if (o[name] !== undefined && (typeof o[name] !== 'string' || o[name] === ''))
      throw refuse(refusal(`'${name}'`, 'a non-empty string', o[name]));
  checkCorsOrigins(o.corsOrigins, refuse);
  for (const name of POSITIVE_LIMITS) checkNumber(o[name], `'${name}'`, POSITIVE_INTEGER, refuse);
  checkBatchingOptions(o, refuse);
  checkNumber(o.refreshMs, "'refreshMs'", NON_NEGATIVE_NUMBER, refuse);
  const short = queueTooShort(o as QueueLimits, (k) => `'${k}'`);
  if (short) throw refuse(short);
}

function checkCorsOrigins(v: unknown, refuse: Refuse): void {
  if (v === undefined) return;
  const want = "an array of origins ('http://localhost:3000') or ['*']";
  if (!Array.isArray(v) || v.some((o) => typeof o !== 'string')) throw refuse(refusal("'corsOrigins'", want, v));
  for (const origin of v as string[]) {
    const problem = originProblem(origin);
    if (problem) throw refuse(`'corsOrigins': ${problem}.`);
  }
}

export interface QueueLimits {
  maxInputs?: number;
  maxQueue?: number;
}

/**
 * Why a queue shorter than one request's inputs is refused (undefined when it is not), with each limit as the
 * caller names it (`name`: '--max-queue' on the command line, 'maxQueue' from code): such a request could never
 * be queued, so every large enough one would get 429 however idle the server.
 */
export function queueTooShort(given: QueueLimits, name: (k: keyof QueueLimits) => string): string | undefined {
  const maxInputs = given.maxInputs ?? DEFAULT_MAX_INPUTS;
  const maxQueue = given.maxQueue ?? DEFAULT_MAX_QUEUE;
  if (maxQueue >= maxInputs) return undefined;
  const said = (n: number | undefined): string => (n === undefined ? ' (the default)' : '');
  return (
    `${name('maxQueue')} ${maxQueue}${said(given.maxQueue)} is below ${name('maxInputs')} ${maxInputs}` +
    `${said(given.maxInputs)}, so a request with more inputs than the queue holds could never be taken; raise ` +
    `${name('maxQueue')} or lower ${name('maxInputs')}.`
  );
}
