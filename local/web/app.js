// The tree page: starts runs through the HTTP API and redraws the selected run's tree whenever
// the dev server's event stream (/events) reports a lifecycle event for it. Plain browser JS, no build.

const $ = (testId, root = document) => root.querySelector(`[data-testid="${testId}"]`);
const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];

const state = {
  examples: [],
  runId: null,
  run: null,
  branches: [],
  selectedBranch: null,
  diagramText: '',
  diagramCount: 0,
  refreshing: false,
  refreshAgain: false,
  refreshTimer: null,
  live: false,
  pollTimer: null,
  pollEvery: 0,
  lastEventAt: 0,
};

/**
 * While the stream is live, an active run with no event for this long is read again anyway: a
 * team whose event setting keeps only branch ends (or none) tells the page little while it runs.
 */
const QUIET_REFRESH_MS = 5000;

// ---------- HTTP ----------

async function request(method, path, { body, headers = {}, as = 'json' } = {}) {
  const response = await fetch(path, { method, headers, body });
  const payload = as === 'text' && response.ok ? await response.text() : await response.json().catch(() => null);
  if (!response.ok) {
    const message = payload && payload.message ? payload.message : `${method} ${path}: HTTP ${response.status}`;
    const error = new Error(payload && payload.field ? `${message} (field: ${payload.field})` : message);
    error.status = response.status;
    throw error;
  }
  return payload;
}

const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);

// ---------- formatting ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (status, testId) => el('span', { class: 'badge', 'data-status': status, 'data-testid': testId }, status);
const secs = (ms) => `${(ms / 1000).toFixed(2)}s`;
const clock = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '—');
const offset = (ms, base) => (ms ? `+${secs(ms - base)}` : '—');
const pretty = (value) => (typeof value === 'string' ? value : JSON.stringify(value, null, 2));

// ---------- examples and starting a run ----------

async function loadExamples() {
  const { examples } = await request('GET', '/examples');
  state.examples = examples;
  const select = $('example-select');
  select.replaceChildren(
    ...examples.map((e) => el('option', { value: e.file }, `${e.file} — ${e.name}`)),
    el('option', { value: '' }, '(paste your own)'),
  );
  const preferred = examples.find((e) => e.file === 'hierarchical.yaml') ?? examples[0];
  if (preferred) select.value = preferred.file;
  showExample();
}

function showExample() {
  const example = state.examples.find((e) => e.file === $('example-select').value);
  $('example-description').textContent = example ? example.description : 'Paste a scenario document (YAML or JSON).';
  $('scenario-input').value = example ? example.text : '';
}

/** The example selector follows the run being viewed: the example of the same scenario name. */
function followRunExample(run) {
  if (state.exampleOfRun === run.runId) return;
  state.exampleOfRun = run.runId;
  const example = state.examples.find((e) => e.name === run.name);
  if (example && $('example-select').value !== example.file) {
    $('example-select').value = example.file;
    showExample();
  }
}

async function startRun() {
  const button = $('start-run');
  const errorBox = $('start-error');
  errorBox.hidden = true;
  button.disabled = true;
  try {
    // YAML is parsed by the dev server; POST /runs itself takes the JSON document.
    // Naming the example: its `module` agents' paths are relative to its file, not to where dev runs.
    const example = $('example-select').value;
    const parse = example ? `/scenarios/parse?example=${encodeURIComponent(example)}` : '/scenarios/parse';
    const { document: scenario } = await request('POST', parse, {
      body: $('scenario-input').value,
      headers: { 'content-type': 'application/yaml' },
    });
    const { runId } = await request('POST', '/runs', {
      body: JSON.stringify(scenario),
      headers: { 'content-type': 'application/json', 'idempotency-key': newKey() },
    });
    await selectRun(runId);
    void loadRunList();
  } catch (error) {
    errorBox.textContent = `error: ${error.message}`;
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
}

// ---------- runs of this session ----------

async function loadRunList() {
  const { runs } = await request('GET', '/runs');
  $('run-list').replaceChildren(
    ...runs.map((r) =>
      el(
        'li',
        { 'data-testid': 'run-item', 'data-run-id': r.runId, 'data-status': r.status, class: r.runId === state.runId ? 'selected' : '', onclick: () => selectRun(r.runId) },
        el('span', { class: 'run-item-name', title: r.runId }, r.name, el('span', { class: 'muted small' }, ` · ${clock(r.createdAt)}`)),
        badge(r.status),
      ),
    ),
  );
  $('run-list-empty').hidden = runs.length > 0;
}

async function selectRun(runId) {
  if (state.runId !== runId) {
    state.runId = runId;
    state.run = null;
    state.branches = [];
    state.selectedBranch = null;
    state.diagramText = '';
    $('tree-diagram').replaceChildren();
    $('tree-diagram').removeAttribute('data-diagram-status');
    const detail = $('branch-detail');
    detail.replaceChildren(el('h3', {}, 'Branch'), el('p', { class: 'muted' }, 'Click a branch to see its sync points, the aggregated result it was resumed with, its result and its steps.'));
    const section = $('run');
    section.setAttribute('data-run-id', runId);
    section.removeAttribute('data-run-status');
    if (location.hash !== `#/runs/${runId}`) history.replaceState(null, '', `#/runs/${runId}`);
    for (const li of document.querySelectorAll('[data-testid="run-item"]')) li.classList.toggle('selected', li.dataset.runId === runId);
  }
  await refresh();
}

// ---------- live refresh ----------

/** Coalesces bursts of events into one refresh; never runs two refreshes at once (no stale redraw). */
function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    void refresh();
  }, 40);
}

async function refresh() {
  if (!state.runId) return;
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  try {
    do {
      state.refreshAgain = false;
      await loadRun(state.runId);
    } while (state.refreshAgain);
  } catch (error) {
    $('run-error').textContent = `error: ${error.message}`;
    $('run-error').hidden = false;
  } finally {
    state.refreshing = false;
  }
  updatePolling();
}

/** Every branch of the run, page by page (the list route answers at most a page at a time). */
async function allBranches(id) {
  const branches = [];
  let cursor = null;
  do {
    const page = await request('GET', `/runs/${id}/branches${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`);
    branches.push(...page.branches);
    cursor = page.cursor ?? null;
  } while (cursor);
  return branches;
}

async function loadRun(runId) {
  const id = encodeURIComponent(runId);
  // The run first: when it reads terminal, the branches read after it are final too.
  const run = await request('GET', `/runs/${id}`);
  const [branches, diagram] = await Promise.all([
    allBranches(id),
    // A diagram's worth at most: a larger tree is not drawn (its first page would be read for nothing).
    request('GET', `/runs/${id}/tree?format=mermaid&limit=${DIAGRAM_MAX_BRANCHES}`, { as: 'text' }).catch((error) => {
      // A stack from before the tree paged answers 413 for a tree too large: the page lists the branches without it.
      if (error.status === 413) return null;
      throw error;
    }),
  ]);
  if (runId !== state.runId) return;
  followRunExample(run);
  state.run = run;
  state.branches = branches;
  renderRun(run, branches);
  await renderDiagram(diagram, branches.length);
  if (state.selectedBranch) await loadBranchDetail(state.selectedBranch);
  // Set last: tests (and people) can rely on everything above being drawn for this status.
  $('run').setAttribute('data-run-status', run.status);
}

function connectEvents() {
  const source = new EventSource('/events');
  source.addEventListener('open', () => {
    setLive(true);
    // Events sent before the stream opened were missed: catch up once.
    scheduleRefresh();
    void loadRunList();
  });
  source.addEventListener('error', () => setLive(false));
  source.addEventListener('lifecycle', (message) => {
    const event = JSON.parse(message.data);
    if (event.runId === state.runId) {
      state.lastEventAt = Date.now();
      scheduleRefresh();
    }
    if (event.type.startsWith('Run')) void loadRunList();
  });
}

function setLive(live) {
  state.live = live;
  const badgeEl = $('live-status');
  badgeEl.dataset.live = live ? 'live' : 'polling';
  badgeEl.textContent = live ? '● live' : 'reconnecting · polling';
  updatePolling();
}

/**
 * Polls the selected run until it ends: every second while the event stream is down, and while
 * it is live only when the run has been quiet for QUIET_REFRESH_MS.
 */
function updatePolling() {
  const active = state.run && !TERMINAL.includes(state.run.status);
  const every = !active ? 0 : state.live ? QUIET_REFRESH_MS : 1000;
  if (state.pollTimer && state.pollEvery !== every) {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }
  if (every && !state.pollTimer) {
    state.pollEvery = every;
    state.pollTimer = setInterval(() => {
      if (!state.live || Date.now() - state.lastEventAt >= QUIET_REFRESH_MS) void refresh();
    }, every);
  }
}

// ---------- rendering ----------

function renderRun(run, branches) {
  $('empty-state').hidden = true;
  $('run').hidden = false;
  $('run-name').textContent = run.name;
  const status = $('run-status');
  status.textContent = run.status;
  status.dataset.status = run.status;
  $('run-id').textContent = run.runId;
  const ended = run.endedAt ? `ended ${clock(run.endedAt)} · took ${secs(run.endedAt - run.createdAt)}` : 'running…';
  $('run-times').textContent = `started ${clock(run.createdAt)} · ${ended}`;
  $('cancel-run').hidden = run.status !== 'RUNNING';
  const runError = $('run-error');
  runError.hidden = !run.error;
  runError.textContent = run.error ? `error: ${run.error}` : '';
  renderMetrics(run);
  renderBranches(run, branches);
  renderCallbacks(run, branches);
  renderFailures(branches);
  $('run-result').textContent = run.status === 'RUNNING' ? '(the run is still running)' : pretty(run.result);
  $('run-result-whole').replaceChildren(...wholeValueNote(run, run.runId, 'root'));
}

/** A large value is shown as a preview: say so, with its size and a link to the whole value. */
function wholeValueNote(view, runId, branchId) {
  if (!view.resultTruncated) return [];
  const href = `/runs/${encodeURIComponent(runId)}/branches/${encodeURIComponent(branchId)}/result`;
  return [
    el('p', { class: 'muted small', 'data-testid': 'result-preview-note' }, `A preview: the whole result is ${view.resultBytes.toLocaleString()} bytes. `, el('a', { href, target: '_blank' }, 'Open it whole')),
  ];
}

function renderMetrics(run) {
  const m = run.metrics;
  const items = [
    ['branches', m.totalCreated, 'totalCreated'],
    ['active', m.activeCount, 'activeCount'],
    ['completed', m.completed, 'completed'],
    ['failed', m.failed, 'failed'],
    ['timed out', m.timedOut, 'timedOut'],
    ['cancelled', m.cancelled, 'cancelled'],
    ['max depth', m.maxDepth, 'maxDepth'],
    ['avg depth', m.avgDepth, 'avgDepth'],
    ['success rate', m.successRate === null ? '—' : `${m.successRate}%`, 'successRate'],
    ['spawns', m.fanOut.spawns, 'spawns'],
    ['max fan-out', m.fanOut.maxWidth, 'maxWidth'],
    ['agent steps', m.steps, 'steps'],
  ];
  $('metrics').replaceChildren(
    ...items.map(([label, value, key]) =>
      el('div', { class: 'metric', 'data-metric': key }, el('div', { class: 'value' }, value), el('div', { class: 'label' }, label)),
    ),
  );
}

/** Depth-first order, children by spawn index (ids are `${parent}.${index}`). */
function treeOrder(branches) {
  const byParent = new Map();
  for (const b of branches) {
    const list = byParent.get(b.parentId) ?? [];
    list.push(b);
    byParent.set(b.parentId, list);
  }
  const index = (b) => Number(b.id.slice(b.id.lastIndexOf('.') + 1));
  const ordered = [];
  const walk = (b, guides) => {
    ordered.push({ branch: b, guides });
    const children = (byParent.get(b.id) ?? []).sort((x, y) => index(x) - index(y));
    children.forEach((c, i) => walk(c, [...guides.map((g) => (g === '├─ ' ? '│  ' : g === '└─ ' ? '   ' : g)), i === children.length - 1 ? '└─ ' : '├─ ']));
  };
  const ids = new Set(branches.map((b) => b.id));
  for (const root of branches.filter((b) => b.parentId === null || !ids.has(b.parentId))) walk(root, []);
  return ordered;
}

/** The same rule as agentLabel in core/tree.ts (CLI tree, Mermaid): arrows, shortened past three. */
function chainText(chain) {
  return chain.length <= 3 ? chain.join(' → ') : `${chain[0]} → … → ${chain[chain.length - 1]} (${chain.length} turns)`;
}

function renderBranches(run, branches) {
  const rows = treeOrder(branches).map(({ branch: b, guides }) => {
    const chain = b.agentChain;
    const duration = b.startedAt ? secs((b.endedAt ?? Date.now()) - b.startedAt) + (b.endedAt ? '' : '…') : '—';
    return el(
      'tr',
      {
        'data-testid': 'branch-row',
        'data-branch-id': b.id,
        'data-status': b.status,
        'data-agent': b.agent,
        'data-entry-agent': chain[0],
        'data-type': b.type,
        'data-depth': b.depth,
        class: b.id === state.selectedBranch ? 'selected' : '',
        onclick: () => selectBranch(b.id),
      },
      el('td', {}, el('span', { class: 'guide' }, guides.join('')), el('span', { class: 'branch-id' }, b.id)),
      el('td', { 'data-col': 'agent', title: chain.join(' → ') }, chainText(chain)),
      el('td', { 'data-col': 'type' }, b.type.toLowerCase()),
      el('td', { 'data-col': 'status' }, badge(b.status), waitingNote(b)),
      el('td', { class: 'num', 'data-col': 'depth' }, b.depth),
      el('td', { class: 'num', 'data-col': 'started', title: clock(b.startedAt) }, offset(b.startedAt, run.createdAt)),
      el('td', { class: 'num', 'data-col': 'ended', title: clock(b.endedAt) }, offset(b.endedAt, run.createdAt)),
      el('td', { class: 'num', 'data-col': 'duration' }, duration),
    );
  });
  $('branch-table').tBodies[0].replaceChildren(...rows);
}

/** What a paused branch waits for (its view's `waiting`), as `tree` says it; nothing for the others. */
function waitingNote(b) {
  if (!b.waiting || !['RUNNING', 'WAITING'].includes(b.status)) return null;
  const what = b.waiting.kind === 'wait' ? 'waiting until' : 'awaiting a callback until';
  return el('div', { class: 'small', 'data-testid': 'branch-waiting', title: new Date(b.waiting.until).toISOString() }, `${what} ${clock(b.waiting.until)}`);
}

/** The callbacks the run awaits, each with a box for its answer (POST /runs/{id}/callbacks/{token}). */
function renderCallbacks(run, branches) {
  const waiting = run.status === 'RUNNING' ? branches.filter((b) => b.waiting && b.waiting.kind === 'callback') : [];
  const section = $('callbacks');
  section.hidden = waiting.length === 0;
  // Redrawn only when the callbacks change, so that an answer being typed survives a refresh.
  const tokens = waiting.map((b) => b.waiting.token).join(' ');
  if (section.dataset.tokens === tokens) return;
  section.dataset.tokens = tokens;
  section.querySelector('ul').replaceChildren(
    ...waiting.map((b) => {
      const answer = el('textarea', { rows: 2, spellcheck: 'false', 'data-testid': 'callback-answer', 'aria-label': `answer for ${b.id}` });
      answer.value = 'true';
      const error = el('div', { class: 'error', 'data-testid': 'callback-error', hidden: true });
      const send = async () => {
        let body;
        try {
          body = JSON.stringify(JSON.parse(answer.value));
        } catch (e) {
          error.textContent = `the answer is not JSON (${e.message}); quote a text: "yes"`;
          error.hidden = false;
          return;
        }
        try {
          await request('POST', `/runs/${encodeURIComponent(run.runId)}/callbacks/${encodeURIComponent(b.waiting.token)}`, { body, headers: { 'content-type': 'application/json' } });
          error.hidden = true;
        } catch (e) {
          error.textContent = `error: ${e.message}`;
          error.hidden = false;
        }
        await refresh();
      };
      return el(
        'li',
        { 'data-testid': 'callback', 'data-branch-id': b.id },
        el('div', {}, el('span', { class: 'link', onclick: () => selectBranch(b.id) }, `${b.id} ${b.agent}`), ` · times out ${clock(b.waiting.until)}`),
        b.waiting.message === undefined ? null : el('pre', { 'data-testid': 'callback-message' }, pretty(b.waiting.message)),
        answer,
        el('button', { type: 'button', class: 'primary', 'data-testid': 'callback-send', onclick: () => void send() }, 'Answer'),
        error,
      );
    }),
  );
}

function renderFailures(branches) {
  const failed = branches.filter((b) => b.status === 'FAILED' || b.status === 'TIMED_OUT');
  const section = $('failed-branches');
  section.hidden = failed.length === 0;
  section.querySelector('ul').replaceChildren(
    ...failed.map((b) =>
      el(
        'li',
        { 'data-testid': 'failed-branch', 'data-branch-id': b.id },
        el('span', { class: 'link', onclick: () => selectBranch(b.id) }, `${b.id} ${b.agent}`),
        ' ',
        badge(b.status),
        ' ',
        el('span', { class: 'err' }, b.error ?? ''),
      ),
    ),
  );
}

const DIAGRAM_MAX_BRANCHES = 200;

async function renderDiagram(text, count) {
  const box = $('tree-diagram');
  if (text === state.diagramText) return;
  state.diagramText = text;
  if (count > DIAGRAM_MAX_BRANCHES) {
    box.replaceChildren(el('p', { class: 'muted' }, `${count} branches: too many for a readable diagram; see the table.`));
    box.dataset.diagramStatus = 'skipped';
    return;
  }
  if (!window.mermaid) {
    box.replaceChildren(el('pre', {}, text));
    box.dataset.diagramStatus = 'text';
    return;
  }
  try {
    const { svg } = await window.mermaid.render(`tree-svg-${++state.diagramCount}`, text);
    if (text !== state.diagramText) return;
    box.innerHTML = svg;
    fitDiagram(box.querySelector('svg'));
    box.dataset.diagramStatus = 'rendered';
  } catch (error) {
    box.replaceChildren(el('pre', {}, `${text}\n\n(diagram error: ${error.message})`));
    box.dataset.diagramStatus = 'error';
  }
}

/**
 * Never wider than drawn: a one-node tree stays node-sized instead of being stretched to the
 * card; a wide tree keeps a readable width (640px at least) and scrolls.
 */
function fitDiagram(svg) {
  const natural = svg && svg.viewBox && svg.viewBox.baseVal ? svg.viewBox.baseVal.width : 0;
  if (!natural) return;
  svg.style.maxWidth = `${natural}px`;
  svg.style.minWidth = `${Math.min(natural, 640)}px`;
}

// ---------- branch detail ----------

async function selectBranch(branchId) {
  state.selectedBranch = branchId;
  for (const tr of document.querySelectorAll('[data-testid="branch-row"]')) tr.classList.toggle('selected', tr.dataset.branchId === branchId);
  await loadBranchDetail(branchId);
}

async function loadBranchDetail(branchId) {
  const runId = state.runId;
  const detail = await request('GET', `/runs/${encodeURIComponent(runId)}/branches/${encodeURIComponent(branchId)}`);
  if (runId !== state.runId || branchId !== state.selectedBranch) return;
  renderDetail(detail);
}

function renderDetail({ branch: b, syncPoints, aggregate, steps }) {
  const base = state.run ? state.run.createdAt : b.createdAt;
  const parentLink = b.parentId ? el('span', { class: 'link', onclick: () => selectBranch(b.parentId) }, b.parentId) : '— (root)';
  const facts = [
    ['agent', b.agent === b.entryAgent ? b.agent : `${b.agent} (started as ${b.entryAgent})`],
    ['type', b.type],
    ['status', badge(b.status)],
    ['depth', b.depth],
    ['parent', parentLink],
    ['sync point', b.parentId ? `#${b.seq} of ${b.parentId}` : '—'],
    ['started', `${offset(b.startedAt, base)} (${clock(b.startedAt)})`],
    ['ended', `${offset(b.endedAt, base)} (${clock(b.endedAt)})`],
    ['duration', b.startedAt && b.endedAt ? secs(b.endedAt - b.startedAt) : '—'],
    ['agent steps', b.stepCount],
  ];
  const children = [
    el('h3', {}, 'Branch'),
    el('h2', {}, `${b.agent} `, el('span', { class: 'muted branch-id' }, b.id)),
    el('dl', {}, ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
  ];
  if (syncPoints.length) {
    children.push(el('h4', {}, 'Sync points'));
    children.push(
      el(
        'div',
        { 'data-testid': 'detail-sync-points' },
        ...syncPoints.map((sp) => {
          const c = sp.counters;
          const counts = c ? `${c.succeeded} succeeded · ${c.failed} failed · ${c.cancelled} cancelled of ${c.total}` : 'not opened yet';
          return el(
            'div',
            { class: 'sync', 'data-testid': 'sync-point', 'data-seq': sp.seq, 'data-outcome': sp.outcome ?? '' },
            el('div', {}, el('b', {}, `#${sp.seq}`), ` · wait for ${sp.waitFor ?? 'all'} · ${counts}`),
            el('div', { class: 'small muted' }, `children: ${sp.children.map((ch) => `${ch.id} ${ch.agent}`).join(', ') || '—'}`),
            el('div', { class: 'small' }, sp.outcome ? `settled: ${sp.outcome} at ${offset(sp.aggregatedAt, base)}` : 'waiting for children…'),
          );
        }),
      ),
    );
  }
  if (aggregate !== null && aggregate !== undefined) {
    children.push(el('h4', {}, 'Aggregated result (what the agent was resumed with)'), el('pre', { 'data-testid': 'detail-aggregate' }, pretty(aggregate)));
  }
  if (b.error) children.push(el('h4', {}, 'Error'), el('pre', { 'data-testid': 'detail-error', class: 'error' }, b.error));
  if (b.status === 'COMPLETED') children.push(el('h4', {}, 'Result'), el('pre', { 'data-testid': 'detail-result' }, pretty(b.result)), ...wholeValueNote(b, state.runId, b.id));
  if (steps.length) {
    children.push(
      el(
        'details',
        {},
        el('summary', {}, `Steps (${steps.length})`),
        ...steps.map((s) =>
          el(
            'div',
            { class: 'step' },
            el('div', { class: 'small' }, el('b', {}, `#${s.step} ${s.agent}`), ` → ${s.decision}${s.resumedAfterSync ? ' · input = aggregate' : ''}`),
            el('pre', {}, `input: ${pretty(s.input)}\nresponse: ${pretty(s.response)}`),
          ),
        ),
      ),
    );
  }
  const box = $('branch-detail');
  box.dataset.branchId = b.id;
  box.replaceChildren(...children);
}

// ---------- start ----------

async function cancelRun() {
  if (!state.runId) return;
  try {
    await request('POST', `/runs/${encodeURIComponent(state.runId)}/cancel`);
  } catch (error) {
    $('run-error').textContent = `error: ${error.message}`;
    $('run-error').hidden = false;
  }
  await refresh();
}

function init() {
  if (window.mermaid) {
    window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: 'neutral', flowchart: { useMaxWidth: true } });
  }
  $('example-select').addEventListener('change', showExample);
  $('start-run').addEventListener('click', () => void startRun());
  $('cancel-run').addEventListener('click', () => void cancelRun());
  connectEvents();
  void loadExamples().catch((error) => {
    $('start-error').textContent = `error: ${error.message}`;
    $('start-error').hidden = false;
  });
  void loadRunList();
  // A link to a run (#/runs/{id}) opens it, on load and when only the hash changes (no reload then).
  const followHash = () => {
    const fromHash = /^#\/runs\/([A-Za-z0-9_-]+)$/.exec(location.hash);
    if (fromHash && fromHash[1] !== state.runId) void selectRun(fromHash[1]);
  };
  window.addEventListener('hashchange', followHash);
  followHash();
}

init();
