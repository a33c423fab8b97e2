/** Turns case results into the figures of the issue (efficiency, overhead, requests, $) and Markdown tables. */
import type { AwsCounts } from './aws-counters';
import { round, type CaseResult, type SystemName } from './measure';
import { branchCount, idealMakespanMs, leafCount, parentCount, type TreeShape } from './workloads';

import { PRICES, type PriceTable } from '../core/prices';

/** The runtime's dated price table (core/prices.ts): the bench and the cost meter price the same. */
export type Prices = PriceTable;

export function loadPrices(): Prices {
  return PRICES;
}

/**
 * Billable units of one run, by service. SQS: the sends are our code path as in AWS; the
 * consumer side is Lambda's event source mapping there, which deletes each received batch
 * with one DeleteMessageBatch — so receives that got messages count twice (receive + delete),
 * whatever the local poller does. Empty receives are left out: idle polling is paid per hour.
 */
export interface Usage {
  dynamodbReadRequests: number;
  dynamodbWriteRequests: number;
  rru: number;
  /** Table + GSI1 write request units. */
  wru: number;
  sqsRequests: number;
  sfnTransitions: number;
  eventBridgeEntries: number;
}

export function usageOf(aws: AwsCounts): Usage {
  return {
    dynamodbReadRequests: aws.dynamodb.readRequests,
    dynamodbWriteRequests: aws.dynamodb.writeRequests,
    rru: aws.dynamodb.rru,
    wru: aws.dynamodb.wru + aws.dynamodb.gsiWru,
    sqsRequests: aws.sqs.sendBilledRequests + 2 * ((aws.sqs.requests.ReceiveMessage ?? 0) - aws.sqs.emptyReceives),
    sfnTransitions: aws.stepFunctions.transitions,
    eventBridgeEntries: aws.eventBridge.entries,
  };
}

export function scaleUsage(u: Usage, by: number): Usage {
  return Object.fromEntries(Object.entries(u).map(([k, v]) => [k, round(v * by, 3)])) as unknown as Usage;
}

export function diffUsage(a: Usage, b: Usage): Usage {
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - b[k as keyof Usage]])) as unknown as Usage;
}

export interface Cost {
  dynamodb: number;
  sqs: number;
  stepFunctions: number;
  eventBridge: number;
  total: number;
}

/** Dollars for the given usage. */
export function costOf(u: Usage, prices: Prices): Cost {
  const p = prices.prices;
  const dynamodb = (u.rru * p.dynamodbReadRequestUnit.usdPerMillion + u.wru * p.dynamodbWriteRequestUnit.usdPerMillion) / 1e6;
  const sqs = (u.sqsRequests * p.sqsRequest.usdPerMillion) / 1e6;
  const stepFunctions = (u.sfnTransitions * p.stepFunctionsStandardTransition.usdPerMillion) / 1e6;
  const eventBridge = (u.eventBridgeEntries * p.eventBridgeCustomEvent.usdPerMillion) / 1e6;
  return { dynamodb, sqs, stepFunctions, eventBridge, total: dynamodb + sqs + stepFunctions + eventBridge };
}

export function perMillion(c: Cost, units: number): Cost {
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, round((v / units) * 1e6, 2)])) as unknown as Cost;
}

/**
 * The alternative design "one Standard execution per branch" (each branch its own state
 * machine: the parent's Map starts the child with startExecution.sync), counted the same way:
 * per leaf, 1 transition in the parent's Map (the .sync task) + InvokeAgent task + a Choice on
 * the decision + the end state = 4; per parent add the Map state, the resumed InvokeAgent and
 * its Choice = 3 more. Nothing else (no DynamoDB, queue or events): its cheapest form.
 */
export function executionPerBranchTransitions(shape: TreeShape): number {
  return 4 * leafCount(shape) + (4 + 3) * parentCount(shape) - 1;
}

export interface Row {
  workload: string;
  shape: TreeShape;
  latencyMs: number;
  concurrency: number;
  branches: number;
  idealMs: number;
  results: Partial<Record<SystemName, CaseResult>>;
}

export function efficiency(row: Row, system: SystemName): number | undefined {
  const r = row.results[system];
  if (!r || r.status !== 'completed' || row.idealMs === 0) return undefined;
  return round(row.idealMs / r.makespanMs, 3);
}

function fmt(x: number | undefined, digits = 0): string {
  if (x === undefined || Number.isNaN(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ms(r: CaseResult | undefined): string {
  if (!r) return '–';
  if (r.status === 'timeout') return `timeout (${r.completedBranches}/${r.expectedBranches})`;
  if (r.status !== 'completed') return 'failed';
  return fmt(r.makespanMs, r.makespanMs < 10 ? 2 : 0);
}

function ratio(a: CaseResult | undefined, b: CaseResult | undefined): string {
  if (!a || !b || a.status !== 'completed' || b.status !== 'completed') return '–';
  return `${fmt(a.makespanMs / b.makespanMs, 2)}×`;
}

function table(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

export function rowFor(shape: TreeShape, latencyMs: number, concurrency: number): Row {
  return {
    workload: `${shape.name} (${shape.fanOuts.length > 3 ? `${shape.fanOuts.length}×1` : shape.fanOuts.join('×')})`,
    shape,
    latencyMs,
    concurrency,
    branches: branchCount(shape),
    idealMs: idealMakespanMs(shape, latencyMs, concurrency),
    results: {},
  };
}

/** Scheduling at the realistic latency: makespan, efficiency, ratios, fan-in; both tiers of ours. */
export function schedulingTable(rows: Row[]): string {
  const eff = (row: Row, s: SystemName) => fmt(efficiency(row, s), 3);
  return table(
    [
      'workload', 'branches', 'c', 'ideal ms',
      'ours ms', 'ours eff', 'engines ms', 'engines eff', 'LG ms', 'LG eff', 'LG+ckpt ms', 'LG+ckpt eff', 'P.all ms', 'P.all eff',
      'ours/LG', 'engines/LG', 'ours/LG+ckpt', 'ours/P.all', 'fan-in p50 / p95 ms: ours', 'engines', 'LG', 'LG+ckpt',
    ],
    rows.map((row) => [
      row.workload,
      fmt(row.branches),
      String(row.concurrency),
      fmt(row.idealMs),
      ms(row.results.ours),
      eff(row, 'ours'),
      ms(row.results['ours-engines']),
      eff(row, 'ours-engines'),
      ms(row.results.langgraph),
      eff(row, 'langgraph'),
      ms(row.results['langgraph-checkpointed']),
      eff(row, 'langgraph-checkpointed'),
      ms(row.results['promise-all']),
      eff(row, 'promise-all'),
      ratio(row.results.ours, row.results.langgraph),
      ratio(row.results['ours-engines'], row.results.langgraph),
      ratio(row.results.ours, row.results['langgraph-checkpointed']),
      ratio(row.results.ours, row.results['promise-all']),
      fanIn(row.results.ours, 0),
      fanIn(row.results['ours-engines'], 0),
      fanIn(row.results.langgraph, 1),
      fanIn(row.results['langgraph-checkpointed'], 1),
    ]),
  );
}

function fanIn(r: CaseResult | undefined, digits: number): string {
  return r?.status === 'completed' ? `${fmt(r.fanIn.p50Ms, digits)} / ${fmt(r.fanIn.p95Ms, digits)}` : '–';
}

/** Pure overhead at 0 ms: wall and CPU per branch, throughput, memory; both tiers of ours. */
export function overheadTable(rows: Row[]): string {
  const per = (r: CaseResult | undefined, x: (r: CaseResult) => number, digits: number) =>
    r && (r.status === 'completed' || r.status === 'timeout') && r.completedBranches > 0 ? fmt(x(r), digits) : '–';
  const cpu = (r: CaseResult) => r.cpuMs / r.completedBranches;
  return table(
    [
      'workload', 'branches', 'c',
      'ours ms', 'ours CPU ms/br', 'ours br/s', 'ours peak RSS MB',
      'engines ms', 'engines CPU ms/br', 'engines br/s', 'engines peak RSS MB',
      'LG ms', 'LG CPU ms/br', 'LG+ckpt ms', 'LG+ckpt CPU ms/br', 'LG+ckpt peak RSS MB', 'P.all ms',
      'ours/LG', 'engines/LG', 'ours/LG+ckpt', 'ours/P.all', 'fan-in p50 / p95 ms: ours', 'engines',
    ],
    rows.map((row) => {
      const o = row.results.ours;
      const e = row.results['ours-engines'];
      const lg = row.results.langgraph;
      const cp = row.results['langgraph-checkpointed'];
      const pa = row.results['promise-all'];
      return [
        row.workload,
        fmt(row.branches),
        String(row.concurrency),
        ms(o),
        per(o, cpu, 2),
        per(o, (r) => r.branchesPerSecond, 0),
        per(o, (r) => r.rssPeakMb, 0),
        ms(e),
        per(e, cpu, 2),
        per(e, (r) => r.branchesPerSecond, 0),
        per(e, (r) => r.rssPeakMb, 0),
        ms(lg),
        per(lg, cpu, 3),
        ms(cp),
        per(cp, cpu, 3),
        per(cp, (r) => r.rssPeakMb, 0),
        ms(pa),
        ratio(o, lg),
        ratio(e, lg),
        ratio(o, cp),
        ratio(o, pa),
        fanIn(o, 0),
        fanIn(e, 0),
      ];
    }),
  );
}

/** Our runtime per engine tier at 0 ms: makespan, CPU per branch and peak RSS side by side, and CPU ratios between tiers. */
export function tiersTable(rows: Row[], systems: readonly SystemName[]): string {
  const cpu = (r: CaseResult | undefined) =>
    r && (r.status === 'completed' || r.status === 'timeout') && r.completedBranches > 0 ? r.cpuMs / r.completedBranches : undefined;
  const pairs: [SystemName, SystemName][] = (
    [
      ['ours-engines-data', 'ours-data'],
      ['ours-engines', 'ours-data'],
      ['ours-data', 'ours'],
    ] as [SystemName, SystemName][]
  ).filter(([a, b]) => systems.includes(a) && systems.includes(b));
  return table(
    [
      'workload', 'branches', 'c',
      ...systems.flatMap((s) => [`${s} ms`, `${s} CPU ms/br`, `${s} peak RSS MB`]),
      ...pairs.map(([a, b]) => `CPU ${a} ÷ ${b}`),
    ],
    rows.map((row) => [
      row.workload,
      fmt(row.branches),
      String(row.concurrency),
      ...systems.flatMap((s) => {
        const r = row.results[s];
        return [ms(r), fmt(cpu(r), 2), r && cpu(r) !== undefined ? fmt(r.rssPeakMb, 0) : '–'];
      }),
      ...pairs.map(([a, b]) => {
        const x = cpu(row.results[a]);
        const y = cpu(row.results[b]);
        return x !== undefined && y !== undefined ? `${fmt(x / y, 1)}×` : '–';
      }),
    ]),
  );
}

export interface RequestFigures {
  workload: string;
  concurrency: number;
  branches: number;
  perBranch: Usage;
  costPerMillionBranches: Cost;
}

/** AWS requests are counted on the engines tier, whose SDK clients make the same calls as in AWS. */
export function requestFigures(row: Row, prices: Prices): RequestFigures | undefined {
  const r = row.results['ours-engines'];
  if (!r?.aws || r.status !== 'completed') return undefined;
  const usage = usageOf(r.aws);
  return {
    workload: row.workload,
    concurrency: row.concurrency,
    branches: row.branches,
    perBranch: scaleUsage(usage, 1 / row.branches),
    costPerMillionBranches: perMillion(costOf(usage, prices), row.branches),
  };
}

export function requestsTable(figures: RequestFigures[]): string {
  return table(
    ['workload', 'c', 'DDB reads/br', 'DDB writes/br', 'RRU/br', 'WRU/br (incl. GSI)', 'SQS req/br', 'SFN transitions/br', 'EB entries/br', '$/M br DDB', '$/M br SQS', '$/M br SFN', '$/M br EB', '$/M branches'],
    figures.map((f) => [
      f.workload,
      String(f.concurrency),
      fmt(f.perBranch.dynamodbReadRequests, 2),
      fmt(f.perBranch.dynamodbWriteRequests, 2),
      fmt(f.perBranch.rru, 2),
      fmt(f.perBranch.wru, 2),
      fmt(f.perBranch.sqsRequests, 2),
      fmt(f.perBranch.sfnTransitions, 2),
      fmt(f.perBranch.eventBridgeEntries, 2),
      fmt(f.costPerMillionBranches.dynamodb, 2),
      fmt(f.costPerMillionBranches.sqs, 2),
      fmt(f.costPerMillionBranches.stepFunctions, 2),
      fmt(f.costPerMillionBranches.eventBridge, 2),
      fmt(f.costPerMillionBranches.total, 2),
    ]),
  );
}

/** Which calls our run makes, per branch, and what each costs in wall time on its engine. */
export function operationsTable(row: Row): string {
  const r = row.results['ours-engines'];
  if (!r?.aws || r.status !== 'completed') return '';
  const lines: string[][] = [];
  const add = (engine: string, requests: Record<string, number>, wallMs: Record<string, number>) => {
    for (const [op, n] of Object.entries(requests).sort((a, b) => b[1] - a[1])) {
      const total = wallMs[op] ?? 0;
      lines.push([engine, op, fmt(n), fmt(n / row.branches, 2), fmt(total / n, 2), fmt(total / row.branches, 2)]);
    }
  };
  add('DynamoDB (dynalite)', r.aws.dynamodb.requests, r.aws.dynamodb.wallMs);
  add('SQS (fauxqs)', r.aws.sqs.requests, r.aws.sqs.wallMs);
  return table(['engine', 'operation', 'requests', 'per branch', 'mean wall ms', 'wall ms per branch (summed, overlapping)'], lines);
}

export function profileTable(results: CaseResult[]): string {
  const withProfile = results.filter((r) => r.profile);
  if (withProfile.length === 0) return '';
  const layers = [...new Set(withProfile.flatMap((r) => r.profile!.byLayer.map((l) => l.layer)))];
  return table(
    ['layer', ...withProfile.map((r) => `${r.spec.system} ${r.spec.shape.name} (% of ${fmt(r.profile!.totalMs)} ms)`)],
    layers.map((layer) => [layer, ...withProfile.map((r) => fmt(r.profile!.byLayer.find((l) => l.layer === layer)?.share, 1))]),
  );
}
