// OpenAPI documentation of the failed-callback routes (src/callbacks/routes.ts). Documentation
// only: the routes check their input themselves (src/http/openapi.ts says why).
import { errorResponses } from '../http/openapi.js';

const listedCallback = {
  type: 'object',
  properties: {
    id: { type: 'string', description: 'the webhook-id (the same on every attempt)' },
    request_id: { type: 'string' },
    tenant: { type: 'string' },
    url: { type: 'string' },
    attempts: { type: 'integer' },
    due_at: { type: ['string', 'null'], format: 'date-time', description: 'the next attempt; null for a dead callback' },
    first_failed_at: { type: 'string', format: 'date-time' },
    last_status: { type: ['integer', 'null'] },
    last_error: { type: ['string', 'null'] },
  },
} as const;

const listQuery = {
  type: 'object',
  properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'how many to list (default 100)' } },
} as const;

const listOf = (what: string) => ({
  tags: ['callbacks'],
  summary: `List ${what} callbacks of the failed-callback spool`,
  querystring: listQuery,
  response: {
    200: {
      description: `how many are ${what}, and the first \`limit\` of them`,
      type: 'object',
      properties: { total: { type: 'integer' }, callbacks: { type: 'array', items: listedCallback } },
    },
    ...errorResponses({ 400: 'INTAKE_BAD_REQUEST: limit is not an integer from 1 to 1000' }),
  },
});

export const deadListSchema = listOf('dead');
export const waitingListSchema = listOf('waiting');

export const replaySchema = {
  tags: ['callbacks'],
  summary: 'Retry a dead callback now (as `intake callbacks replay`)',
  params: { type: 'object', required: ['id'], properties: { id: { type: 'string', description: 'the webhook-id' } } },
  response: {
    202: { description: 'moved back to be retried by every node', type: 'object', properties: { id: { type: 'string' }, status: { const: 'waiting' } } },
    ...errorResponses({ 404: 'INTAKE_NOT_FOUND: no dead callback with this id' }),
  },
} as const;
