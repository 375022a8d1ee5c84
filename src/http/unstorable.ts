// Values the database could not store exactly (U+0000, lone surrogates) are refused with a 400
// before anything is written, the same on both engines, wherever a client sends JSON that is
// kept: payloads and metadata at intake, results of the work API.
import { Errors } from '../errors.js';
import { unstorableJson } from '../spool/records.js';

/** `text` is JSON.stringify output of the client's value. */
export function refuseUnstorable(text: string, field: string): void {
  const why = unstorableJson(text);
  if (why) throw Errors.badRequest(`${field} must not contain ${why} in a string or key: the database cannot store it`);
}
