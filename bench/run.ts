/**
 * `npm run bench [-- --quick] [-- --only=ours,langgraph] [-- --profile] [-- --huge]`
 *
 * `--huge` runs only the 100,000-branch tree (0 ms, c = 40) on the default tier and the peers.
 * `--wide` runs only the wide fan-out workload (bench/wide-cost.ts): 200 / 1,000 / 10,000 children.
 *
 * Runs every workload on our embedded runtime and on the two peers, one fresh process per case
 * and one case at a time (2 cores: a concurrent case would steal the CPU being measured),
 * prints the tables and writes bench/results/<date>[-quick].json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaseResult, CaseSpec, SystemName } from './measure';
import { OURS, round } from './measure';
import {
  costOf,
  diffUsage,
  efficiency,
  executionPerBranchTransitions,
  loadPrices,
  operationsTable,
  overheadTable,
  perMillion,
  profileTable,
  requestFigures,
  requestsTable,
  rowFor,
  scaleUsage,
  schedulingTable,
  tiersTable,
  usageOf,
  type Row,
} from './report';
import { summarize, type Profile } from './profile-summary';
import { branchCount, HUGE, leafCount, QUICK_SHAPES, SHAPES, type TreeShape } from './workloads';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
if (args.includes('--help')) {
  console.log(`npm run bench [-- options]
  --quick            smaller trees, c = 10 only
  --only=a,b         some systems: ours (memory tier) | ours-data (journal tier, as run --data) | ours-engines
                     (dynalite + fauxqs) | ours-engines-data (dynalite + fauxqs with a data folder) | langgraph |
                     langgraph-checkpointed | promise-all (default: all but ours-engines-data)
  --profile          a CPU profile of each 0 ms / c = 10 case, summarized by layer
  --huge             the 100,000-branch tree (0 ms, c = 40) on the default tier and the peers
  --wide             the wide fan-out workload (200 / 1,000 / 10,000 children) and its cost
  --cost             the cost table per million leaves (ours, Standard per branch, durable functions) and its check against the meter`);
  process.exit(0);
}
const quick = args.includes('--quick');
const profile = args.includes('--profile');
const huge = args.includes('--huge');
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const systems: SystemName[] = onlyArg
  ? (onlyArg.split(',') as SystemName[])
  : huge
    ? ['ours', 'langgraph', 'promise-all']
    : ['ours', 'ours-data', 'ours-engines', 'langgraph', 'langgraph-checkpointed', 'promise-all'];

const LATENCIES = [0, 100];
const CONCURRENCY = quick ? [10] : [10, 40];
const shapes = quick ? QUICK_SHAPES : SHAPES;
const MAIN: TreeShape[] = [shapes.wide, shapes.balanced, shapes.deep];
/** Our 10k tree may not finish on the embedded engines: past this, its progress rate is reported. */
const SCALE_BUDGET_MS = huge ? 1_200_000 : quick ? 15_000 : 150_000;
const CASE_BUDGET_MS = 120_000;

function runCase(spec: CaseSpec): Promise<CaseResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/run-ts.mjs'), join(ROOT, 'bench/case.ts'), JSON.stringify(spec)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // The child has its own budget; this only guards against a process that never answers.
    const guard = setTimeout(() => child.kill('SIGKILL'), (spec.budgetMs ?? CASE_BUDGET_MS) + 60_000);
    child.on('close', (code) => {
      clearTimeout(guard);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (line) return done(JSON.parse(line.slice('RESULT '.length)) as CaseResult);
      done({ spec, status: 'failed', error: `exit ${code}: ${err.slice(-2000)}` } as CaseResult);
    });
  });
}

function label(spec: CaseSpec): string {
  return `${spec.system.padEnd(22)} ${spec.shape.name.padEnd(8)} ${String(branchCount(spec.shape)).padStart(6)} br  L=${String(spec.latencyMs).padStart(3)}ms  c=${spec.concurrency}`;
}

async function main() {
  const started = Date.now();
  const prices = loadPrices();
  const rows: Row[] = [];
  if (!huge) {
    for (const latencyMs of LATENCIES) {
      for (const shape of MAIN) for (const c of CONCURRENCY) rows.push(rowFor(shape, latencyMs, c));
    }
  }
  const scaleRow = rowFor(huge ? HUGE : shapes.scale, 0, 40);
  rows.push(scaleRow);
  // For the marginal cost of one more leaf: a narrower wide tree, same settings (engines tier only: requests are counted there).
  const marginalShape: TreeShape = { name: 'wide', fanOuts: [quick ? 50 : 200] };
  const marginalRow = rowFor(marginalShape, 0, 10);

  const profileDir = join(tmpdir(), 'branch-spawner-bench-profiles');
  if (profile) mkdirSync(profileDir, { recursive: true });
  const plan: { row: Row; spec: CaseSpec }[] = [];
  for (const row of huge ? rows : [...rows, marginalRow]) {
    for (const system of systems) {
      if (row === marginalRow && system !== 'ours-engines') continue;
      const spec: CaseSpec = { system, shape: row.shape, latencyMs: row.latencyMs, concurrency: row.concurrency };
      const ours = OURS.includes(system);
      spec.budgetMs = row === scaleRow ? (ours ? SCALE_BUDGET_MS : Math.max(CASE_BUDGET_MS, huge ? SCALE_BUDGET_MS : 0)) : CASE_BUDGET_MS;
      if (profile && row.latencyMs === 0 && row.concurrency === 10 && row !== marginalRow) {
        spec.profileFile = join(profileDir, `${system}-${row.shape.name}.cpuprofile`);
      }
      plan.push({ row, spec });
    }
  }
  console.log(
    `branch-spawner bench${quick ? ' --quick' : ''}: ${plan.length} cases, one process each, one at a time ` +
      `(load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores)`,
  );
  for (const [i, { row, spec }] of plan.entries()) {
    const t0 = Date.now();
    const load = round(loadavg()[0], 2);
    const result = await runCase(spec);
    result.loadAvg1mAtStart = load;
    if (spec.profileFile && result.status === 'completed') {
      const summary = summarize(JSON.parse(readFileSync(spec.profileFile, 'utf8')) as Profile, 10);
      result.profile = { totalMs: round(summary.totalMs), byLayer: summary.byLayer, topFunctions: summary.topFunctions };
      rmSync(spec.profileFile, { force: true });
    }
    row.results[spec.system] = result;
    const eff = efficiency(row, spec.system);
    const what =
      result.status === 'completed'
        ? `${result.makespanMs.toFixed(0)} ms${eff !== undefined ? `  eff ${eff.toFixed(3)}` : ''}  cpu ${result.cpuMs.toFixed(0)} ms`
        : `${result.status}${result.status === 'timeout' ? ` ${result.completedBranches}/${result.expectedBranches} at ${result.branchesPerSecond} br/s` : ''} ${result.error ?? ''}`;
    console.log(`[${String(i + 1).padStart(2)}/${plan.length}] ${label(spec)}  ${what}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }

  const at100 = rows.filter((r) => r.latencyMs === 100);
  const at0 = rows.filter((r) => r.latencyMs === 0);
  const figures = [...at0, marginalRow].map((r) => requestFigures(r, prices)).filter((f) => f !== undefined);
  const wideFull = rows.find((r) => r.latencyMs === 0 && r.concurrency === 10 && r.shape === shapes.wide);
  const marginal = marginalLeaf(wideFull, marginalRow, prices);

  console.log('\n## Scheduling efficiency (agent latency 100 ms)\n');
  console.log(schedulingTable(at100));
  console.log('\n## Overhead (agent latency 0 ms)\n');
  console.log(overheadTable(at0));
  const tiers = OURS.filter((s) => systems.includes(s));
  if (tiers.length > 1) {
    console.log('\n## Our runtime per engine tier (agent latency 0 ms)\n');
    console.log(tiersTable(at0, tiers));
  }
  console.log('\n## AWS requests per branch and $ per million branches (ours on the engines tier, 0 ms runs)\n');
  console.log(requestsTable(figures));
  // Wall time per request: contended (wide: many steps at once) and one step at a time (deep).
  const deep0 = rows.find((r) => r.latencyMs === 0 && r.concurrency === 10 && r.shape === shapes.deep);
  for (const row of [wideFull, deep0]) {
    if (!row) continue;
    console.log(`\n## Requests by operation and wall time per request (ours on the engines tier, ${row.workload}, 0 ms, c=10)\n`);
    console.log(operationsTable(row));
  }
  if (profile) {
    console.log('\n## CPU of the measured window by layer (--profile; figures above include the profiler)\n');
    console.log(profileTable(plan.map((p) => p.row.results[p.spec.system]!).filter((r) => r.profile)));
  }
  if (marginal) {
    console.log(
      `\nMarginal leaf (wide ${marginalRow.shape.fanOuts[0]} → ${wideFull!.shape.fanOuts[0]} leaves): ` +
        `${JSON.stringify(marginal.perLeaf)}\n  $/M leaves ${JSON.stringify(marginal.costPerMillionLeaves)}; ` +
        `one Standard execution per branch instead: ${marginal.executionPerBranchTransitionsPerLeaf} transitions/leaf = ` +
        `$${marginal.executionPerBranchCostPerMillionLeaves}/M leaves`,
    );
  }
  const durationS = round((Date.now() - started) / 1000, 1);
  console.log(`\nbench ${quick ? '--quick ' : ''}took ${durationS} s`);

  const date = new Date().toISOString().slice(0, 10);
  const suffix = `${huge ? '-huge' : ''}${quick ? '-quick' : ''}${onlyArg ? `-${systems.join('+')}` : ''}${profile ? '-profile' : ''}`;
  const file = join(ROOT, 'bench/results', `${date}${suffix}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        mode: huge ? 'huge' : quick ? 'quick' : 'full',
        durationS,
        machine: { node: process.version, cpus: cpus().length, platform: process.platform, loadAvg1mAtEnd: round(loadavg()[0], 2) },
        code: codeState(),
        idealFormula: 'T(leaf)=L; T(level i)=2L+ceil(f_i/c)*T(level i+1); efficiency = ideal / measured makespan',
        prices,
        rows: rows.map(compactRow),
        requestsPerBranch: figures,
        marginalLeaf: marginal,
      },
      null,
      1,
    ),
  );
  console.log(`wrote ${file}`);
}

function marginalLeaf(big: Row | undefined, small: Row, prices: ReturnType<typeof loadPrices>) {
  const a = big?.results['ours-engines'];
  const b = small.results['ours-engines'];
  if (!big || !a?.aws || !b?.aws || a.status !== 'completed' || b.status !== 'completed') return undefined;
  const leaves = leafCount(big.shape) - leafCount(small.shape);
  const perLeaf = scaleUsage(diffUsage(usageOf(a.aws), usageOf(b.aws)), 1 / leaves);
  const transitions = executionPerBranchTransitions(big.shape) - executionPerBranchTransitions(small.shape);
  const sfnPerLeaf = transitions / leaves;
  return {
    leaves,
    perLeaf,
    costPerMillionLeaves: perMillion(costOf(perLeaf, prices), 1),
    executionPerBranchTransitionsPerLeaf: sfnPerLeaf,
    executionPerBranchCostPerMillionLeaves: round(sfnPerLeaf * prices.prices.stepFunctionsStandardTransition.usdPerMillion, 2),
  };
}

/** Which code was measured: the commit plus the runtime files changed on top of it (others edit in parallel). */
function codeState() {
  const git = (...a: string[]) => {
    try {
      return execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trimEnd();
    } catch {
      return '';
    }
  };
  const changed = git('status', '--porcelain', '--', 'core', 'adapters', 'functions', 'local', 'adapters/stepfunctions/fan-out.asl.json');
  return { commit: git('rev-parse', 'HEAD'), changedRuntimeFiles: changed ? changed.split('\n').map((l) => l.slice(3)) : [] };
}

/** The JSON keeps figures, not the per-operation detail of every peer. */
function compactRow(row: Row) {
  return {
    workload: row.workload,
    fanOuts: row.shape.fanOuts.length > 3 ? `${row.shape.fanOuts.length}x1` : row.shape.fanOuts,
    latencyMs: row.latencyMs,
    concurrency: row.concurrency,
    branches: row.branches,
    idealMs: row.idealMs,
    efficiency: Object.fromEntries(systems.map((s) => [s, efficiency(row, s) ?? null])),
    results: Object.fromEntries(
      Object.entries(row.results).map(([system, r]) => {
        const { spec, ...rest } = r!;
        return [system, { pollers: spec.pollers, ...rest }];
      }),
    ),
  };
}

if (args.includes('--cost')) {
  // The cost table per million leaves and its agreement with the meter: bench/cost-table.ts.
  const { runCostTable } = await import('./cost-table');
  await runCostTable();
} else if (args.includes('--wide')) {
  // The wide fan-out workload (200 / 1,000 / 10,000 children, at 40 and 200): bench/wide-cost.ts.
  const { runWide } = await import('./wide-cost');
  await runWide();
} else {
  await main();
}
