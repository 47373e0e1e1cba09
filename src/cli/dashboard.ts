import { parseArgs } from './parse-options.js';
import { apiKeyOption, corsOriginHelp, corsOriginsOption, hostOption, openServerWarning, portOption } from './args.js';
import { UserError, type Command } from './command.js';
import { runWatch } from './run-folders.js';
import { listenError } from './serve.js';
import { startDashboardServer } from '../serve/dashboard-server.js';
import { counted } from '../io/counted.js';

const HELP = `search-r3 dashboard — training runs as live curves in a web page

usage: search-r3 dashboard <run folder>... [--host <addr>] [--port <n>] [--api-key <key>] [--cors-origin <o>]

Serves a page (http://<host>:<port>/) that draws every metric the runs log in metrics.jsonl (train lm,
sft and rl: loss terms, rewards, KL, staleness, dev nDCG@10, ...) as curves, the runs overlaid, with
each run's config beside them; the curves grow while the runs write. A recipe work folder
(search-r3 recipe default --work <dir>) shows its stages lm, stage1 and stage2 and its evaluation
tables; a folder with evaluation.md (a model's) shows its tables. A folder given twice (by another path, or
as a stage of a recipe folder also given) is shown once; an empty one waits for its run; any other folder
(an index, a model folder without evaluation.md) is refused. Damaged or cut lines of metrics.jsonl are
skipped and reported on the page.

The same page is at /runs of 'search-r3 serve --runs <folder>'.

options:
  --host <addr>      listen address (default 127.0.0.1)
  --port <n>         port (default 8080; 0 picks a free one)
  --api-key <key>    require Authorization: Bearer <key> for the run data (default: $SEARCH_R3_API_KEY if
                     set); the page asks for it
${corsOriginHelp(21)}
  -h, --help         this help`;

export const dashboardCommand: Command = {
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'api-key': { type: 'string' },
        'cors-origin': { type: 'string', multiple: true },
      },
    });
    if (positionals.length === 0)
      throw new UserError('give at least one run folder: search-r3 dashboard <run folder>.');
    const port = portOption(values.port);
    const host = hostOption(values.host);
    const apiKey = apiKeyOption(values['api-key']);
    const corsOrigins = corsOriginsOption(values['cors-origin']);
    const runs = runWatch(positionals);
    const server = await startDashboardServer({ runs, host, port, apiKey, corsOrigins }).catch((e: unknown) => {
      throw listenError(e, host, port) ?? e;
    });
    const open = openServerWarning(host, apiKey, 'the dashboard');
    if (open) console.error(`search-r3: warning: ${open}`);
    console.log(`search-r3 dashboard of ${counted(positionals.length, 'folder')} at ${server.url}/`);
    await new Promise<void>((resolve) => {
      const stop = (): void => void server.close().then(resolve, resolve);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};
