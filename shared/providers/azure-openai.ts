import { openAiStyleError } from './errors.js';
import { openAiCodec } from './openai-content.js';
import { describeOpenAiBody, openAiUsageHandlers } from './openai.js';
import { decodeSegment, bodyJson, splitPath } from './request.js';
import type { Operation, ProviderAdapter } from './types.js';

// Azure OpenAI: `{resource}.openai.azure.com`. The host does not say where a resource lives, so the region comes
// from the policy's `spec.regions.azureResources` map and is unknown otherwise. Two API shapes:
//   /openai/deployments/{deployment}/chat/completions?api-version=…  (the deployment is the model)
//   /openai/v1/chat/completions, /openai/responses?api-version=…     (the model, a deployment name, is in the body)
// Streamed usage is not injected here: older api-versions reject `stream_options`; streams without it are
// counted as usage missing.

const HOST = /^([a-z0-9][a-z0-9-]{0,62})\.openai\.azure\.com$/;

const TAIL: Record<string, Operation> = {
  'chat/completions': 'chat',
  completions: 'text_completion',
  embeddings: 'embeddings',
  responses: 'responses',
};

const DEPLOYMENT = /^\/openai\/deployments\/([^/]+)\/(.+?)\/?$/;
const V1 = /^\/openai\/(?:v1\/)?(chat\/completions|completions|embeddings|responses)\/?$/;

export const azureOpenai: ProviderAdapter = {
  id: 'azure-openai',
  otelName: 'azure.ai.openai',
  matchHost: (host) => HOST.test(host),
  errorResponse: openAiStyleError,
  describe(req, opts) {
    const resource = HOST.exec(req.host)?.[1] ?? '';
    const region = opts.azureResources?.[resource];
    const where = region
      ? { region, reach: [region], regionNote: `Azure OpenAI resource "${resource}" (spec.regions.azureResources)` }
      : { regionNote: `Azure OpenAI resource "${resource}" is not listed in spec.regions.azureResources` };
    const { pathname } = splitPath(req.path);
    const json = bodyJson(req);
    const dep = DEPLOYMENT.exec(pathname);
    if (dep) {
      const deployment = decodeSegment(dep[1]!);
      const body = describeOpenAiBody(json, TAIL[dep[2]!] ?? 'unknown');
      return { ...body, ...(deployment && { model: deployment }), ...where };
    }
    const v1 = V1.exec(pathname);
    return { ...describeOpenAiBody(json, v1 ? TAIL[v1[1]!]! : 'unknown'), ...where };
  },
  usageHandlers: () => openAiUsageHandlers(),
  codec: (d) => openAiCodec(d.operation),
};
