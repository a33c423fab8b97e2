/**
 * The request an `http` or `lambda` agent receives: `{ agent, input, memory, allowed, branchId,
 * runId, team, step }` as JSON. A request past `AGENT_INLINE_REQUEST_BYTES` would break Lambda's
 * 6 MB invoke limit (a 10,000-child aggregate is 20 MB) or an HTTP server's body limit, so its
 * largest values (the input, memory entries' contents) are passed by reference instead, largest
 * first until it fits: each becomes `{ "$ref": <a URL to GET it from>, bytes, expiresAt, preview }`
 * and `byReference` lists where (`input`, `memory.<i>.content`), so an agent never takes a value
 * of its own that looks like a reference for one. docs/agents.md tells agent builders.
 */
import { boundValue, jsonBytes, utf8Bytes } from './bounded-value';
import { PayloadTooLargeError } from './errors';
import type { AgentInvocation, ValueLinks } from './ports';

/** A request up to this size is sent whole; past it, its largest values go by reference. */
export const AGENT_INLINE_REQUEST_BYTES = 256 * 1024;
/** A value this small is never worth a reference (the reference is about as large). */
const MIN_REFERENCE_BYTES = 1024;
/** What a reference shows of its value, so an agent that needs only counts reads no URL. */
const REFERENCE_PREVIEW_BYTES = 2 * 1024;

/** A value passed by reference, in place of the value. */
export interface ValueReference {
  $ref: string;
  bytes: number;
  expiresAt: string;
  preview: unknown;
}

export interface AgentRequest {
  agent: string;
  input: unknown;
  memory: { role: string; agent: string; content: unknown; inherited?: boolean }[];
  allowed: string[];
  branchId: string;
  runId: string;
  team: string;
  step: number;
  /** Where a value was replaced by a ValueReference (`input`, `memory.<i>.content`); absent when none was. */
  byReference?: string[];
}

/**
 * The request body of one call. Without `links` (or when it fits) it carries every value whole;
 * a request that stays over `inlineBytes` once every value worth it is a reference fails.
 */
export async function agentRequestBody(call: AgentInvocation, links: ValueLinks | undefined, inlineBytes = AGENT_INLINE_REQUEST_BYTES): Promise<string> {
  const request: AgentRequest = {
    agent: call.agentName,
    input: call.input ?? null,
    memory: call.memory,
    allowed: call.allowed,
    branchId: call.branchId,
    runId: call.runId,
    team: call.team,
    step: call.step,
  };
  const whole = JSON.stringify(request);
  const wholeBytes = utf8Bytes(whole);
  if (!links || wholeBytes <= inlineBytes) return whole;

  // The values worth a reference, largest first.
  const candidates: { path: string; value: unknown; bytes: number }[] = [{ path: 'input', value: request.input, bytes: jsonBytes(request.input) }];
  request.memory.forEach((entry, i) => candidates.push({ path: `memory.${i}.content`, value: entry.content, bytes: jsonBytes(entry.content) }));
  const large = candidates.filter((c) => c.bytes >= MIN_REFERENCE_BYTES).sort((a, b) => b.bytes - a.bytes);

  const memory = [...request.memory];
  const out: AgentRequest = { ...request, memory, byReference: [] };
  let size = wholeBytes;
  for (const candidate of large) {
    if (size <= inlineBytes) break;
    const { url, expiresAt } = await links.link(call, JSON.stringify(candidate.value ?? null));
    const reference: ValueReference = { $ref: url, bytes: candidate.bytes, expiresAt, preview: boundValue(candidate.value, REFERENCE_PREVIEW_BYTES).value };
    if (candidate.path === 'input') out.input = reference;
    else {
      const i = Number(candidate.path.split('.')[1]);
      memory[i] = { ...memory[i], content: reference };
    }
    out.byReference!.push(candidate.path);
    size += jsonBytes(reference) - candidate.bytes;
  }
  const body = JSON.stringify(out);
  const bytes = utf8Bytes(body);
  if (bytes > inlineBytes) {
    throw new PayloadTooLargeError(
      `the request to agent ${call.agentName} is ${bytes} bytes with its large values passed by reference, over ${inlineBytes}: its memory has too many entries`,
      bytes,
      inlineBytes,
      { field: 'memory' },
    );
  }
  return body;
}
