/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof) by who burns the CPU: self time per package
 * (dynalite, fauxqs, the AWS SDK, ...), per project folder, and the top functions.
 * Usage: node bin/run-ts.mjs bench/profile-summary.ts <file.cpuprofile> [top]
 */
import { readFileSync } from 'node:fs';

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  /** Self time per layer: each sample goes to the nearest frame on its stack that names a layer. */
  byLayer: { layer: string; ms: number; share: number }[];
  byOwner: { owner: string; ms: number; share: number }[];
  topFunctions: { fn: string; owner: string; ms: number }[];
}

/** Which package or project folder a script URL belongs to. */
export function ownerOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(garbage collector)') return '(gc)';
    return `(${functionName.replace(/[()]/g, '') || 'native'})`;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] === 'internal' ? url.slice(5).split('/')[1] : url.slice(5)}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  // The journal tier's file (local/engines/journal*.ts) apart from the rest of our code.
  if (/\/local\/engines\/journal[^/]*\.ts$/.test(url)) return 'journal tier';
  const project = url.match(/\/work\/[^/]+\/([^/]+)\//);
  return project ? `project:${project[1]}` : url;
}

/** The profiler's own start/stop, left out of the totals like idle time. */
const PROFILER = '(profiler)';

const LAYERS: [RegExp, string][] = [
  [/^(dynalite|level.*|memory-level|abstract-level|buffer-crc32|big\.js|lazy|lock)$/, 'DynamoDB engine (dynalite)'],
  [/^(fauxqs|fastify|@fastify\/.*|find-my-way|avvio|light-my-request|valibot|toad-cache)$/, 'SQS engine (fauxqs)'],
  [/^(aws-local-stepfunctions|jsonpath-plus|asl-validator|asl-path-validator)$/, 'Step Functions engine (aws-local-stepfunctions)'],
  [/^(@smithy\/.*|@aws-sdk\/.*|node:_http_client|node:_http_agent|node:_http_outgoing|node:_http_common)$/, 'AWS SDK clients (+ HTTP client)'],
  [/^node:_http_server$/, "engines' HTTP servers"],
  [/^journal tier$/, 'journal (the journal tier: JSON lines, file writes)'],
  [/^(project:.*|@aws-lambda-powertools\/.*|zod)$/, 'our code (core, adapters, handlers, runtime)'],
  [/^(@langchain\/.*|langsmith|p-queue|p-retry|uuid)$/, 'LangGraph'],
  [/^\(gc\)$/, 'garbage collector'],
  [/^node:inspector$/, PROFILER],
];

function layerOf(owner: string): string | undefined {
  return LAYERS.find(([re]) => re.test(owner))?.[1];
}

export function summarize(profile: Profile, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const layerCache = new Map<number, string>();
  const layerOfNode = (id: number): string => {
    const cached = layerCache.get(id);
    if (cached) return cached;
    let layer: string | undefined;
    for (let at: number | undefined = id; at !== undefined && !layer; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      layer = layerOf(ownerOf(frame.url, frame.functionName));
    }
    layer ??= 'other (node internals, microtasks, program)';
    layerCache.set(id, layer);
    return layer;
  };
  const layers = new Map<string, number>();
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const owners = new Map<string, number>();
  const fns = new Map<string, { owner: string; us: number }>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const owner = ownerOf(node.callFrame.url, node.callFrame.functionName);
    if (owner === '(idle)') {
      idle += us;
      continue;
    }
    const layer = layerOfNode(id);
    if (layer === PROFILER) continue;
    total += us;
    layers.set(layer, (layers.get(layer) ?? 0) + us);
    owners.set(owner, (owners.get(owner) ?? 0) + us);
    const file = node.callFrame.url.split('/').slice(-1)[0];
    const key = `${node.callFrame.functionName || '(anonymous)'} ${file}:${node.callFrame.lineNumber + 1}`;
    const entry = fns.get(key) ?? { owner, us: 0 };
    entry.us += us;
    fns.set(key, entry);
  }
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    byLayer: [...layers.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([layer, us]) => ({ layer, ms: Math.round(us / 100) / 10, share: Math.round((us / total) * 1000) / 10 })),
    byOwner: [...owners.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([owner, us]) => ({ owner, ms: Math.round(us / 100) / 10, share: Math.round((us / total) * 1000) / 10 })),
    topFunctions: [...fns.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([fn, { owner, us }]) => ({ fn, owner, ms: Math.round(us / 100) / 10 })),
  };
}

if (process.argv[1]?.endsWith('profile-summary.ts')) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: profile-summary <file.cpuprofile> [top]');
    process.exit(2);
  }
  const summary = summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 15));
  console.log(`CPU (non-idle) ${summary.totalMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`);
  console.log('by layer:');
  for (const l of summary.byLayer) console.log(`${l.share.toFixed(1).padStart(5)}%  ${l.ms.toFixed(0).padStart(7)} ms  ${l.layer}`);
  console.log('by package (self):');
  for (const o of summary.byOwner.slice(0, 25)) console.log(`${o.share.toFixed(1).padStart(5)}%  ${o.ms.toFixed(0).padStart(7)} ms  ${o.owner}`);
  console.log('top functions (self time):');
  for (const f of summary.topFunctions) console.log(`${f.ms.toFixed(0).padStart(7)} ms  ${f.owner.padEnd(28)} ${f.fn}`);
}
