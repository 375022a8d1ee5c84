// OpenAPI schemas of the processing API. They document only: routes.ts checks the input (src/http/openapi.ts
// says why fastify never validates or serialises with them).
import { errorResponses, OPTIONAL_BODY } from '../http/openapi.js';

const id = { type: 'string', description: 'the request id' } as const;
const idParams = { type: 'object', required: ['id'], properties: { id } } as const;
const leaseToken = { type: 'string', minLength: 1, maxLength: 64, description: 'the token the claim gave' } as const;
const leaseSeconds = { type: 'integer', minimum: 1, maximum: 3600, default: 60 } as const;
const itemError = { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } as const;

const notSaveMode = { 503: 'INTAKE_NOT_SAVE_MODE, INTAKE_STORE_UNAVAILABLE: this node does not serve the processing API now; use a save-mode node' };
const leaseProblems = errorResponses({
  404: 'INTAKE_NOT_FOUND: no such request of this tenant',
  409: 'INTAKE_LEASE_CONFLICT: not claimed under this lease (expired, released, completed, or claimed by another worker)',
  ...notSaveMode,
});

const done = (status: string, description: string) => ({
  description,
  type: 'object',
  required: ['id', 'status'],
  properties: { id, status: { const: status } },
});

/** A batch: per-item answers, in order; one item's problem does not fail the others. */
function batch(summary: string, withResult: boolean, okStatus: string) {
  return {
    tags: ['work'],
    summary,
    description: 'A malformed batch is refused whole, before anything is written; otherwise every item gets its own answer.',
    body: {
      type: 'object',
      required: ['items'],
      properties: {
        items: {
          type: 'array',
          minItems: 1,
          maxItems: 1000,
          items: {
            type: 'object',
            required: withResult ? ['id', 'lease_token', 'result'] : ['id', 'lease_token'],
            properties: { id, lease_token: leaseToken, ...(withResult ? { result: { description: 'any JSON value' } } : {}) },
          },
        },
      },
    },
    response: {
      200: {
        description: 'one answer per item, in order',
        type: 'object',
        properties: {
          items: {
            type: 'array',
            items: {
              oneOf: [
                { type: 'object', required: ['id', 'status'], properties: { id, status: { const: okStatus } } },
                { type: 'object', required: ['id', 'error'], properties: { id, error: itemError } },
              ],
            },
          },
        },
      },
      ...errorResponses(notSaveMode),
    },
  };
}

export const claimSchema = {
  tags: ['work'],
  summary: 'Claim pending requests with a lease',
  description: 'Round-robin across lanes unless `lane` names one. A lease that runs out returns the request to the queue. The body may be omitted.',
  [OPTIONAL_BODY]: true,
  body: {
    type: 'object',
    properties: {
      limit: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
      lease_seconds: leaseSeconds,
      lane: { type: ['string', 'null'], description: 'only this lane (null: the unnamed lane)' },
    },
  },
  response: {
    200: {
      description: 'the claimed requests (none when nothing is pending)',
      type: 'object',
      properties: {
        items: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id,
              lease_token: { type: 'string' },
              lease_expires_at: { type: 'string', format: 'date-time' },
              attempts: { type: 'integer' },
              lane: { type: ['string', 'null'] },
              received_at: { type: 'string', format: 'date-time' },
              payload: { description: 'any JSON value' },
              metadata: { type: ['object', 'null'] },
            },
          },
        },
      },
    },
    ...errorResponses({ 403: 'INTAKE_FORBIDDEN: the key lacks the process scope, or may not claim from this lane', ...notSaveMode }),
  },
} as const;

export const completeSchema = {
  tags: ['work'],
  summary: 'Complete a claimed request with its result',
  description: 'The callback is recorded in the same transaction and sent at least once.',
  params: idParams,
  body: { type: 'object', required: ['lease_token', 'result'], properties: { lease_token: leaseToken, result: { description: 'any JSON value' } } },
  response: { 200: done('completed', 'completed'), ...leaseProblems },
} as const;

export const releaseSchema = {
  tags: ['work'],
  summary: 'Release a claimed request back to the queue',
  params: idParams,
  body: { type: 'object', required: ['lease_token'], properties: { lease_token: leaseToken } },
  response: { 200: done('pending', 'back in the queue'), ...leaseProblems },
} as const;

export const extendSchema = {
  tags: ['work'],
  summary: 'Extend the lease of a claimed request',
  params: idParams,
  body: { type: 'object', required: ['lease_token'], properties: { lease_token: leaseToken, lease_seconds: leaseSeconds } },
  response: {
    200: { ...done('claimed', 'the lease now ends lease_seconds from now'), properties: { id, status: { const: 'claimed' }, lease_expires_at: { type: 'string', format: 'date-time' } } },
    ...leaseProblems,
  },
} as const;

export const completeBatchSchema = batch('Complete many claimed requests', true, 'completed');
export const releaseBatchSchema = batch('Release many claimed requests', false, 'pending');
