/**
 * GET|HEAD /health: the status, 200 when the model takes requests and the index can be read, 503 with the
 * reason otherwise. Without the API key (when one is set) only the status; with it what the server serves,
 * never the machine's paths (folders by their basename).
 */
import path from 'node:path';
import { type ServerContext, indexProblem } from '../server-context.js';

export function health(ctx: ServerContext, details: boolean): { status: number; body: Record<string, unknown> } {
  const { model, index } = ctx;
  const m = model.health();
  let reason = ctx.draining ? 'the server is shutting down.' : m.reason;
  let indexInfo: Record<string, unknown> | undefined;
  if (index) {
    try {
      indexInfo = { documents: index.stats().documents, folder: path.basename(index.dir) };
    } catch (e) {
      reason ??= indexProblem(e, index.dir);
    }
  }
  const status = ctx.draining ? 'draining' : reason ? 'error' : 'ok';
  const code = status === 'ok' ? 200 : 503;
  if (!details) return { status: code, body: { status } };
  return {
    status: code,
    body: {
      status,
      ...(reason ? { reason } : {}),
      model: ctx.modelName,
      model_id: model.modelId,
      model_folder: path.basename(model.source),
      dimension: model.dimension,
      max_length: model.maxLength,
      templates: model.templates,
      // what hybrid search fuses with, so that a remote client (RemoteEmbedder) ranks as this server does
      ...(model.fusion
        ? { fusion: { dense_weight: model.fusion.denseWeight, k: model.fusion.k, chosen_on: model.fusion.chosenOn } }
        : {}),
      queue: ctx.queued(),
      model_worker: { state: m.state, restarts: m.restarts },
      ...(indexInfo ? { index: indexInfo } : {}),
    },
  };
}
