/** GET /v1/models and GET /v1/models/{id}: the served model, under its name (or its fingerprint). */
import { type ServerContext, notFoundModel } from '../server-context.js';

function modelObject(id: string): Record<string, unknown> {
  return { id, object: 'model', created: 0, owned_by: 'search-r3' };
}

export function listModels(ctx: ServerContext): unknown {
  return { object: 'list', data: [modelObject(ctx.modelName)] };
}

export function getModel(ctx: ServerContext, id: string): unknown {
  if (id !== ctx.modelName && id !== ctx.model.modelId) throw notFoundModel(id, ctx.modelName);
  return modelObject(id);
}
