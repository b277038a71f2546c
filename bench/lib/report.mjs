// Results: the JSON of a run, and from all runs kept in bench/results/ the Markdown table (bench/RESULTS.md)
// and the chart (bench/results/chart.svg) of loopwork ÷ anchor ratios against the goals, and the profiles of the
// rows still behind their goals (bench/PROFILES.md).
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluateGoal } from './stats.mjs';
import { document, el, text } from './svg.mjs';

export function formatValue(v, unit) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (unit === 'MiB') return `${v.toFixed(1)} MiB`;
  const abs = Math.abs(v);
  // Small figures (GiB/s) keep two significant digits after the point; counts are whole.
  const n =
    abs >= 1e6
      ? `${(v / 1e6).toFixed(2)} M`
      : abs >= 1e3
        ? `${(v / 1e3).toFixed(1)} k`
        : abs < 10
          ? `${v.toFixed(2)} `
          : `${v.toFixed(0)} `;
  return `${n}${unit}`;
}

const fmt = (v, digits = 1) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits));

function statusText(sys, max = 110) {
  if (!sys) return 'not registered';
  if (sys.summary) return null;
  const status = sys.status === 'unavailable' ? 'not available yet' : (sys.status ?? 'failed');
  const t = `${status}: ${(sys.error ?? 'no sample').replace(/^Error: /, '')}`;
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** The rows of the goals table for one workload of one run. */
export function rowsOf(w, run) {
  const byId = new Map(w.systems.map((s) => [s.id, s]));
  const firstLw = w.systems.find((s) => s.role === 'loopwork');
  const rows = [];
  const push = (goal) => {
    const lw = byId.get(goal.system ?? firstLw?.id);
    const anchor = byId.get(goal.vs);
    const { ratio, met, stretch } = evaluateGoal(goal, lw, anchor);
    const others = w.systems
      .filter((s) => s.role !== 'loopwork' && s.id !== goal.vs && s.summary && anchor?.summary)
      .map((s) => ({ label: s.label, ratio: s.summary.median / anchor.summary.median }));
    rows.push({ w, run, goal, lw, anchor, ratio, met, stretch, others });
  };
  for (const goal of w.goals ?? []) push(goal);
  const covered = new Set((w.goals ?? []).map((g) => g.vs));
  for (const id of w.compare ?? []) if (!covered.has(id)) push({ vs: id, text: '—' });
  return rows;
}

/** Server CPU per request, the steadier figure on a shared box: "9.1 / 11.3 (0.81×)". */
function cpuText(row) {
  const a = row.lw?.summary?.serverCpuUsPerReq;
  const b = row.anchor?.summary?.serverCpuUsPerReq;
  if (a === undefined && b === undefined) return '';
  const per = row.w.metric.per ? ` per ${row.w.metric.per}` : '';
  return `${fmt(a, 1)} / ${fmt(b, 1)}${a && b ? ` (${(a / b).toFixed(2)}×)` : ''}${per}`;
}

function metText(row) {
  if (!row.goal.op) return '—';
  if (row.met === null) return '— (not measured)';
  if (row.met && row.stretch) return '**yes** (stretch too)';
  return row.met ? '**yes**' : 'no';
}

/** Every stored run, oldest first. */
export function loadRuns(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      try {
        return { file: f, ...JSON.parse(readFileSync(join(dir, f), 'utf8')) };
      } catch {
        return null;
      }
    })
    .filter((r) => r && typeof r.date === 'string' && Array.isArray(r.workloads)); // other tools' files too
}

/**
 * For each workload, its newest full (non-smoke) measurement, else its newest smoke one; in the order of
 * `knownIds` (the harness's registry), then of their runs.
 */
export function latestWorkloads(runs, knownIds = []) {
  const best = new Map();
  for (const run of runs) {
    for (const w of run.workloads) {
      const prev = best.get(w.id);
      if (!prev || !run.smoke || prev.run.smoke) best.set(w.id, { w, run });
    }
  }
  const known = new Map(knownIds.map((id, i) => [id, i]));
  const position = ({ w, run }) => known.get(w.id) ?? knownIds.length + run.workloads.indexOf(w);
  return [...best.values()].sort((a, b) => order(a.w.id) - order(b.w.id) || position(a) - position(b));
}

const GROUPS = ['core', 'net', 'mem', 'http', 'tls'];
const order = (id) => {
  const i = GROUPS.indexOf(id.split('/')[0]);
  return i < 0 ? GROUPS.length : i;
};

const DETAIL_COLUMNS = [
  ['mibps', 'MiB/s', (v) => fmt(v, 1)],
  ['p50us', 'p50 µs', (v) => fmt(v, 0)],
  ['p99us', 'p99 µs', (v) => fmt(v, 0)],
  ['serverCpuUsPerReq', 'server CPU-µs/req', (v) => fmt(v, 2)],
  ['serverCpuPct', 'server CPU %', (v) => fmt(v, 0)],
  ['clientCpuPct', 'client CPU %', (v) => (v >= 90 ? `${fmt(v, 0)} ⚠` : fmt(v, 0))],
  ['baselineMiB', 'idle MiB', (v) => fmt(v, 1)],
  ['perConnKiB', 'KiB/conn', (v) => fmt(v, 2)],
  ['busyBefore', 'machine busy before %', (v) => fmt(v, 0)],
];

function markdownTable(header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const runLabel = (run) => `${run.date.slice(0, 16).replace('T', ' ')}${run.smoke ? ' smoke' : ''}`;

export function renderMarkdown(entries) {
  const used = [...new Set(entries.map((e) => e.run))].sort((a, b) => a.date.localeCompare(b.date));
  const out = ['# loopwork benchmark results', ''];
  out.push(
    'Generated by `npm run bench` (bench/run.mjs) from the newest measurement of each workload in `bench/results/`;',
    'do not edit by hand. Figures are the **median** of interleaved rounds (min–max in the details); the ratio is',
    'loopwork ÷ anchor on the same machine in the same run. Absolute numbers drift on this shared VM; ratios hold.',
    'The chart: [results/chart.svg](results/chart.svg). Method and goals: `../shared/BENCH.md`; how to run: [README.md](README.md).',
    '',
  );
  out.push('## Runs', '');
  out.push(
    markdownTable(
      ['run', 'rounds', 'machine', 'Node', 'Python', 'uvloop', 'pinning', 'load avg at start'],
      used.map((r) => [
        runLabel(r),
        String(r.rounds),
        `${r.machine.nproc} × ${r.machine.cpuModel}`,
        r.machine.node,
        r.machine.python ?? 'missing',
        r.machine.uvloop ?? '**missing**',
        r.pinning,
        r.machine.loadavg,
      ]),
    ),
    '',
  );
  // A run records every anchor its machine lacked; only runs with a row shown here that says "missing" matter.
  const missing = new Map();
  const lacking = new Set(entries.filter((e) => e.w.systems.some((s) => s.status === 'missing')).map((e) => e.run));
  for (const r of used) {
    if (lacking.has(r)) for (const [k, v] of Object.entries(r.missing ?? {})) missing.set(k, v);
  }
  if (missing.size > 0) {
    out.push('> **ANCHORS MISSING** in these runs (their rows say "missing"):', '>');
    for (const [k, v] of missing) out.push(`> - **${k}**: ${v}`);
    out.push('');
  }

  out.push('## Goals', '');
  const goalRows = entries.flatMap((e) => rowsOf(e.w, e.run));
  out.push(
    markdownTable(
      ['workload', 'loopwork', 'anchor', 'ratio', 'goal', 'met?', 'server CPU-µs/req, loopwork / anchor'],
      goalRows.map((row) => {
        const unit = row.w.metric.unit;
        const lwText = row.lw?.summary ? formatValue(row.lw.summary.median, unit) : statusText(row.lw);
        const anchorText = row.anchor?.summary
          ? `${row.anchor.label}: ${formatValue(row.anchor.summary.median, unit)}`
          : `${row.anchor?.label ?? row.goal.vs}: ${statusText(row.anchor)}`;
        const name = `${row.w.id}${row.run.smoke ? ' (smoke)' : ''}`;
        const lwName =
          row.lw && row.w.systems.filter((s) => s.role === 'loopwork').length > 1 ? ` (${row.lw.label})` : '';
        return [
          name + lwName,
          lwText,
          anchorText,
          row.ratio === null ? '—' : `${row.ratio.toFixed(2)}×`,
          row.goal.text,
          metText(row),
          cpuText(row),
        ];
      }),
    ),
    '',
  );

  out.push('## Details', '');
  for (const { w, run } of entries) {
    out.push(
      `### ${w.id}`,
      '',
      `${w.title}. Run ${runLabel(run)}, ${w.metric.unit}${w.metric.better === 'lower' ? ' (lower is better)' : ''}.`,
      '',
    );
    const cols = DETAIL_COLUMNS.filter(([k]) => w.systems.some((s) => s.summary && s.summary[k] !== undefined));
    const rows = w.systems.map((s) => {
      if (!s.summary) return [s.label, statusText(s), '', '', ...cols.map(() => '')];
      const { median, min, max, n } = s.summary;
      const unit = w.metric.unit;
      return [
        s.label,
        `**${formatValue(median, unit)}**`,
        `${formatValue(min, unit)} – ${formatValue(max, unit)}`,
        String(n),
        ...cols.map(([k, , f]) => f(s.summary[k])),
      ];
    });
    const perOp = (label) => (w.metric.per ? label.replace('/req', `/${w.metric.per}`) : label);
    out.push(markdownTable(['system', 'median', 'min – max', 'n', ...cols.map(([, label]) => perOp(label))], rows), '');
    if (w.systems.some((s) => s.summary?.clientCpuPct >= 90)) {
      out.push(
        "⚠ the load client's core was saturated (≥ 90 % CPU) for some systems: their req/s is a lower bound; compare the server CPU-µs/req.",
        '',
      );
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * Horizontal bars of loopwork ÷ anchor on a log scale, from 1× (left: behind, right: ahead), a dashed line for
 * each row's goal, and grey ticks for the other anchors against the same anchor.
 */
export function renderChart(entries) {
  const rows = entries.flatMap((e) => rowsOf(e.w, e.run)).filter((r) => r.goal.op || !(r.w.goals ?? []).length);
  const W = 1180;
  const left = 440;
  const right = 200;
  const rowH = 28;
  const plotW = W - left - right;
  const all = rows
    .flatMap((r) => [r.ratio, r.goal.ratio, r.goal.stretch, ...r.others.map((o) => o.ratio)])
    .filter((v) => Number.isFinite(v) && v > 0);
  const span = Math.min(5, Math.max(2, ...all.map((v) => Math.ceil(Math.abs(Math.log2(v)) + 0.2))));
  const x = (r) => left + ((Math.max(-span, Math.min(span, Math.log2(r))) + span) / (2 * span)) * plotW;
  const halo = { stroke: '#fff', 'stroke-width': 3, 'paint-order': 'stroke' };
  const parts = [];
  let y = 76;
  let group = null;
  const body = [];
  for (const row of rows) {
    const g = row.w.id.split('/')[0];
    if (g !== group) {
      group = g;
      y += 8;
      body.push(el('text', { x: 16, y: y + 16, 'font-size': 13, 'font-weight': 600, fill: '#333' }, text(g)));
      body.push(el('line', { x1: 16, x2: W - 16, y1: y + 22, y2: y + 22, stroke: '#ccc' }));
      y += 26;
    }
    const label = `${row.w.id.slice(g.length + 1)} vs ${row.anchor?.label ?? row.goal.vs}${row.run.smoke ? ' (smoke)' : ''}`;
    body.push(el('text', { x: left - 10, y: y + 18, 'font-size': 12, 'text-anchor': 'end' }, text(label)));
    // Lower-is-better metrics (RSS) are drawn inverted, so that right is always ahead.
    const lower = row.w.metric.better === 'lower';
    const at = (r) => x(lower ? 1 / r : r);
    if (row.ratio !== null) {
      const colour = row.met === null ? '#2563eb' : row.met ? '#16a34a' : '#dc2626';
      const x0 = x(1);
      const x1 = at(row.ratio);
      body.push(
        el(
          'rect',
          {
            x: Math.min(x0, x1),
            y: y + 7,
            width: Math.max(2, Math.abs(x1 - x0)),
            height: rowH - 14,
            fill: colour,
            rx: 2,
          },
          el('title', {}, text(`${row.lw.label}: ${row.ratio.toFixed(3)}× ${row.anchor.label}`)),
        ),
      );
      const right = x1 >= x0;
      body.push(
        el(
          'text',
          { x: x1 + (right ? 6 : -6), y: y + 18, 'font-size': 11, 'text-anchor': right ? 'start' : 'end', ...halo },
          text(`${row.ratio.toFixed(2)}×${lower ? ' (lower is better)' : ''}`),
        ),
      );
    } else {
      const why = (statusText(row.lw) ?? 'not measured').replace(/Error: /g, '');
      body.push(
        el(
          'text',
          { x: left + 8, y: y + 18, 'font-size': 11, fill: '#b45309', 'font-style': 'italic', ...halo },
          text(`loopwork ${why.length > 80 ? `${why.slice(0, 80)}…` : why}`),
        ),
      );
    }
    for (const o of row.others) {
      body.push(
        el(
          'line',
          {
            x1: at(o.ratio),
            x2: at(o.ratio),
            y1: y + 4,
            y2: y + rowH - 4,
            stroke: '#777',
            'stroke-width': 2,
            opacity: 0.8,
          },
          el('title', {}, text(`${o.label}: ${o.ratio.toFixed(2)}×`)),
        ),
      );
    }
    for (const gv of [row.goal.ratio, row.goal.stretch]) {
      if (!Number.isFinite(gv)) continue;
      const dash = gv === row.goal.ratio ? '5 3' : '1 3';
      body.push(
        el('line', {
          x1: at(gv),
          x2: at(gv),
          y1: y + 1,
          y2: y + rowH - 1,
          stroke: '#111',
          'stroke-width': 2,
          'stroke-dasharray': dash,
        }),
      );
    }
    const goal = row.goal.text === '—' ? 'no goal' : row.goal.text;
    body.push(el('text', { x: W - right + 10, y: y + 18, 'font-size': 11, fill: '#333' }, text(goal)));
    y += rowH;
  }
  const H = y + 50;
  parts.push(el('rect', { x: 0, y: 0, width: W, height: H, fill: '#fff' }));
  parts.push(
    el(
      'text',
      { x: 16, y: 28, 'font-size': 18, 'font-weight': 600 },
      text('loopwork ÷ anchor, median of interleaved rounds (log scale)'),
    ),
  );
  parts.push(
    el(
      'text',
      { x: 16, y: 50, 'font-size': 12, fill: '#555' },
      text(
        'bar from 1×: loopwork (green: goal met · red: not met · blue: no goal) · dashed: the goal (dotted: stretch) · grey ticks: the other anchors against the same anchor',
      ),
    ),
  );
  for (let e = -span; e <= span; e++) {
    const v = 2 ** e;
    parts.push(
      el('line', {
        x1: x(v),
        x2: x(v),
        y1: 70,
        y2: H - 40,
        stroke: e === 0 ? '#333' : '#e3e3e3',
        'stroke-width': e === 0 ? 1.5 : 1,
      }),
    );
    const label = e >= 0 ? `${v}×` : `1/${2 ** -e}×`;
    parts.push(el('text', { x: x(v), y: H - 24, 'font-size': 11, 'text-anchor': 'middle', fill: '#555' }, text(label)));
  }
  parts.push(el('text', { x: x(1) - 8, y: 68, 'font-size': 11, 'text-anchor': 'end', fill: '#555' }, text('← behind')));
  parts.push(el('text', { x: x(1) + 8, y: 68, 'font-size': 11, fill: '#555' }, text('ahead →')));
  return document(W, H, ...parts, ...body);
}

/** The file in bench/profiles/ that `--profile` writes for a workload. */
export function profileFile(benchDir, id) {
  return join(benchDir, 'profiles', `${id.replaceAll('/', '_')}.md`);
}

/**
 * Gathers bench/profiles/*.md into PROFILES.md for the workloads whose newest measurement is still behind a
 * goal, and deletes the profiles of those whose newest measurement meets every goal, or that have none (they
 * describe a past).
 */
function writeProfiles(benchDir, entries) {
  const dir = join(benchDir, 'profiles');
  if (!existsSync(dir)) return;
  const sections = [];
  for (const { w, run } of [...entries].sort((a, b) => (a.w.id < b.w.id ? -1 : 1))) {
    const file = profileFile(benchDir, w.id);
    if (!existsSync(file)) continue;
    const goals = rowsOf(w, run).filter((r) => r.goal.op);
    if (goals.some((r) => r.met === false)) sections.push(readFileSync(file, 'utf8'));
    else if (!goals.some((r) => r.met === null)) rmSync(file);
  }
  writeFileSync(
    join(benchDir, 'PROFILES.md'),
    '# Where loopwork spends its time, in the rows behind their goal\n\n' +
      'Generated by `npm run bench -- <names> --profile` (bench/run.mjs): for each workload with a goal not met,\n' +
      "one more sample of loopwork's side under `node --cpu-prof`, its main thread's self time by category and by\n" +
      'function. "native" is time in C++ (libuv, syscalls, the V8 runtime) that the sampler cannot attribute to a\n' +
      'JavaScript function; "idle" is time waiting for I/O. A call into loopwork\'s addon counts as the self time of\n' +
      "its JavaScript wrapper: `send native.js` and `recv native.js` are mostly the kernel's send(2) and recv(2).\n" +
      'A workload whose newest measurement meets its goals has its profile removed.\n\n' +
      sections.join('\n'),
  );
}

/**
 * Regenerates RESULTS.md and chart.svg from every run stored in bench/results/, and PROFILES.md from the
 * profiles of the workloads still behind.
 */
export function regenerate(benchDir, knownIds = []) {
  const dir = join(benchDir, 'results');
  mkdirSync(dir, { recursive: true });
  const entries = latestWorkloads(loadRuns(dir), knownIds);
  writeFileSync(join(benchDir, 'RESULTS.md'), renderMarkdown(entries));
  writeFileSync(join(dir, 'chart.svg'), renderChart(entries));
  writeProfiles(benchDir, entries);
  return entries;
}

/** Writes the run's JSON, then regenerates RESULTS.md and chart.svg from every stored run. */
export function writeResults(benchDir, run, knownIds = []) {
  const dir = join(benchDir, 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = run.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const file = join(dir, `${stamp}${run.smoke ? '-smoke' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(run, null, 1)}\n`);
  return { file, entries: regenerate(benchDir, knownIds) };
}
